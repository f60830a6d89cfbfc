"""A fast, certified solver for the convex programs of docs/reference.md §3.

Every program is a group basis pursuit / group lasso over blocks A_g (n x d):

    (BP)     min  sum_g ||w_g||                          s.t. sum_g A_g w_g = y,  G_g w_g >= 0
    (LASSO)  min  1/2 ||sum_g A_g w_g - y||^2 + beta sum_g ||w_g||,               G_g w_g >= 0

with the optional linear cones G_g w_g >= 0 on some blocks. Their duals (scaled to beta = 1
for the lasso, see program.py):

    max  y^T lam  [- beta/2 ||lam||^2]   s.t.  ||A_g^T lam + G_g^T mu_g|| <= 1,  mu_g >= 0.

ReLU blocks (§3a-d): A_g = +-D_i X, G_g = (2 D_i - I) X; the skip block is A_0 = X.
Normalization-layer blocks (§3e): A_g = +-U_i, G_g = (2 D_i - I) X V_i Sigma_i^-1.

Method:
- a primal-dual interior-point method (NT scaling, Mehrotra predictor-corrector) whose Newton
  system is reduced to the n x n dual Schur matrix  sum_g A_g K_g^-1 A_g^T.  For plain
  second-order-cone blocks K_g^-1 = eta_g^2 (I + 2 u_g u_g^T), so for ReLU blocks the matrix is
  (X X^T) o (M diag(eta^2) M^T) + V V^T: two n x P x n products per iteration, no n x Pd matrix.
- a working set: the interior-point method runs on the blocks that can be active, grown by the
  most violated dual constraints of the whole family (all block products X^T (M o lam) in one
  matrix product); cone blocks need an NNLS projection to evaluate their dual constraint,
  first bounded from above by a batched projected-gradient screen, which settles most blocks.
  A round's subproblem is solved to a loose tolerance only, and taken on to the tight one
  from the same iterate where that finds no block to add (most rounds are not the last). In
  the cone forms a block joins with its opposite-sign copy, which keeps the round's dual
  optimum bounded. Blocks whose dual constraint is active (== 1, a possible tie) always join
  the working set, so that the interior-point method, which converges to the relative
  interior of the optimal face, sees every optimal solution: on a tie (e.g. the all-ones
  pattern next to the skip block) the returned point spreads over the tied blocks, exactly
  like CVXPY + Clarabel.
- cone forms start from their relaxation (the same program without cones, cheap): where its
  optimum is unique and meets the cones it is the cone form's optimum, else its support, both
  signs, is the starting working set (cone blocks cost n d^2 + n^2 d each per iteration, so
  they should enter only where needed). Other starting sets: the skip block; the blocks best
  correlated with y and with the least-squares dual.
- an exact-penalty l1 slack keeps every working-set subproblem of basis pursuit feasible; a
  slack left over at the end means the program itself is infeasible.
- a certificate from the final primal point and a dual-feasible lam (lam scaled down by its
  largest dual constraint): relative primal residual, dual violation, relative duality gap,
  cone violation. A solve whose certificate is not tight to CERT_TOL raises SolveFailed.
- where the interior-point method stalls just short of that (its late Newton directions lose
  accuracy on degenerate blocks), fallbacks, each kept only where it improves the
  certificate: blocks just outside their cones projected onto them, the working set rerun
  from the support and the active blocks, Newton's method on the optimality conditions on
  the support and its active cone rows.

Modules, each importing only the ones above it:

    program       the scaled program (basis pursuit or lasso), CERT_TOL, TIE_TOL
    families      block families: the interface BlockFamily, ReLU and dense (normalization) blocks
    cones         second-order cone algebra, Nesterov-Todd scaling
    cone_program  the IPM's cone program on one family: its iterate, residuals, cold start
    newton        the Newton system of one iteration, reduced to the dual Schur matrix
    ipm           the interior-point loop
    duals         every block's dual constraint value (NNLS, screened)
    working_set   the working-set rounds and their warm starts
    certificate   the certificate, uniqueness, certify_relu
    fallbacks     the certified working-set solve and the fallbacks where it is loose
    entry         solve_blocks, solve_relu, solve_norm
"""
from planted.solver.certificate import certify_relu, relu_certificate
from planted.solver.entry import solve_blocks, solve_norm, solve_relu
from planted.solver.families import norm_family, relu_family
from planted.solver.program import CERT_TOL, FORMS, TIE_TOL

__all__ = ["solve_relu", "solve_norm", "certify_relu", "relu_certificate", "solve_blocks", "relu_family", "norm_family",
           "CERT_TOL", "FORMS", "TIE_TOL"]
