"""The fast certified solver (planted.solver) against CVXPY + Clarabel, certificates, degenerate input."""
import importlib
import pkgutil
from dataclasses import replace

import numpy as np
import pytest

import utils
from planted import cvx, data, patterns, recovery, solver
from planted.solution import SolveFailed
from planted.solver import certificate, duals, entry, fallbacks, newton
from planted.solver.program import Program

FORMS = [("relaxed", None), ("exact", None), ("exact", 1e-3)]

# every module of the solver (a helper patched below is patched wherever it is used)
MODULES = [importlib.import_module(f"planted.solver.{m.name}")
           for m in pkgutil.iter_modules(solver.__path__) if not m.name.startswith("_")]


def patch_solver(monkeypatch, name, value):
    """Replace the helper `name` in every module of planted.solver that uses it."""
    for module in MODULES:
        if hasattr(module, name):
            monkeypatch.setattr(module, name, value)


def skip_case(n, d, seed, sigma=0.0):
    rng = np.random.default_rng(seed)
    inst = data.skip_instance(n, d, 0, 0, sigma, rng)
    return inst, patterns.skip_patterns(inst["X"], rng)


def agree(X, M, y, form, beta, skip):
    """Both solvers on one instance: objectives within 1e-6 relative, fast point feasible."""
    ref = cvx.solve_relu(X, M, y, form, beta, skip, solver="CLARABEL")
    sol = solver.solve_relu(X, M, y, form, beta, skip)
    assert abs(sol.objective - ref.objective) <= 1e-6 * max(abs(ref.objective), 1e-9)
    if beta is None:
        assert np.linalg.norm(recovery.fitted(X, M, sol) - y) <= 1e-7 * max(np.linalg.norm(y), 1)
    solver.certify_relu(X, M, y, sol, form, beta, skip)
    return ref, sol


@pytest.mark.parametrize("form,beta", FORMS)
@pytest.mark.parametrize("n,d,seed", [(12, 6, 0), (30, 8, 1), (40, 8, 2)])
def test_skip_forms_agree_with_cvxpy(form, beta, n, d, seed):
    inst, M = skip_case(n, d, seed)
    ref, sol = agree(inst["X"], M, inst["y"], form, beta, True)
    assert recovery.skip_recovered(sol, inst["w"]) == recovery.skip_recovered(ref, inst["w"])


@pytest.mark.parametrize("form,beta", FORMS)
def test_noisy_skip_agrees_with_cvxpy(form, beta):
    inst, M = skip_case(30, 6, 5, sigma=0.1)
    agree(inst["X"], M, inst["y"], form, beta, True)


@pytest.mark.parametrize("form,beta", FORMS)
@pytest.mark.parametrize("n,d,k,seed", [(20, 5, 1, 0), (30, 6, 2, 1)])
def test_plain_forms_agree_with_cvxpy(form, beta, n, d, k, seed):
    rng = np.random.default_rng(seed)
    inst = data.plain_instance(n, d, k, 0, 0, 0.0, rng)
    M, cols, planted = recovery.plain_setup(inst, rng)
    ref, sol = agree(inst["X"], M, inst["y"], form, beta, False)
    assert recovery.blocks_recovered(sol, planted) == recovery.blocks_recovered(ref, planted)


@pytest.mark.parametrize("form,beta", FORMS)
def test_norm_forms_agree_with_cvxpy(form, beta):
    rng = np.random.default_rng(7)
    inst = data.norm_instance(24, 5, 1, 0, 0, 0.0, rng)
    B, cols, planted = recovery.norm_setup(inst, rng)
    ref = cvx.solve_norm(B, inst["y"], form, beta, solver="CLARABEL")
    sol = solver.solve_norm(B, inst["y"], form, beta)
    assert abs(sol.objective - ref.objective) <= 1e-6 * abs(ref.objective)
    assert recovery.blocks_recovered(sol, planted) == recovery.blocks_recovered(ref, planted)
    assert sol.certificate["gap"] <= solver.CERT_TOL


@pytest.mark.parametrize("form,beta", FORMS)
def test_perturbed_solution_is_rejected(form, beta):
    inst, M = skip_case(30, 6, 3)
    X, y = inst["X"], inst["y"]
    sol = solver.solve_relu(X, M, y, form, beta)
    cert = solver.certify_relu(X, M, y, sol, form, beta)
    assert max(cert["residual"], cert["gap"]) <= solver.CERT_TOL
    # the lasso is smooth in the fit: its objective grows only quadratically off the optimum
    delta = 1e-6 if beta is None else 1e-3
    for key in ("W", "w0"):
        bad = replace(sol, **{key: getattr(sol, key) + delta})
        with pytest.raises(SolveFailed, match="certificate"):
            solver.certify_relu(X, M, y, bad, form, beta)
    with pytest.raises(SolveFailed, match="certificate"):  # a dual vector that is not optimal
        solver.certify_relu(X, M, y, replace(sol, lam=0.9 * sol.lam), form, beta)


def test_zero_labels():
    inst, M = skip_case(20, 5, 0)
    for form, beta in FORMS:
        sol = solver.solve_relu(inst["X"], M, np.zeros(20), form, beta)
        assert sol.objective == 0 and not sol.w0.any() and not sol.W.any()


def test_all_ones_pattern_is_a_tie():
    """D = I next to the skip block: the relaxed optimum is a tie, never 'recovered' (§2)."""
    inst, M = skip_case(60, 6, 4)  # far above the transition: recovered without D = I
    X, y, w = inst["X"], inst["y"], inst["w"]
    M = M[:, ~M.all(0)]
    sol = solver.solve_relu(X, M, y)
    # (the returned point alone, ties aside: unique=None)
    assert sol.unique and recovery.skip_recovered(sol, w) and recovery.skip_recovered(replace(sol, unique=None), w)
    Mi = np.column_stack([M, np.ones(60, bool)])
    ref, sol = agree(X, Mi, y, "relaxed", None, True)
    assert abs(sol.objective - np.linalg.norm(w)) <= 1e-8
    assert not sol.unique and not recovery.skip_recovered(sol, w)
    assert not recovery.skip_recovered(replace(sol, unique=None), w) and not recovery.skip_recovered(ref, w)
    # the exact program's cone X w_I >= 0 breaks the tie (X w != 0 has both signs)
    ex = solver.solve_relu(X, Mi, y, "exact")
    assert ex.unique and recovery.skip_recovered(ex, w)


def test_duplicate_patterns():
    inst, M = skip_case(16, 6, 6)  # below the transition: ReLU blocks in the optimum
    X, y = inst["X"], inst["y"]
    single = solver.solve_relu(X, M, y)
    Md = np.column_stack([M, M])
    ref, sol = agree(X, Md, y, "relaxed", None, True)
    assert abs(sol.objective - single.objective) <= 1e-8 * single.objective
    if len(single.support) > 1:  # a ReLU block is used: its copy shares it, a tie
        assert not sol.unique


def test_rank_deficient_X_and_n_less_than_d():
    rng = np.random.default_rng(8)
    X = data.make_X(30, 6, 0, rng)
    X[:, 5] = X[:, 4]  # rank 5
    w = rng.standard_normal(6)
    y = X @ w
    M = patterns.skip_patterns(X, rng)
    for form, beta in FORMS:
        agree(X, M, y, form, beta, True)
    inst, M = skip_case(6, 10, 9)  # n < d
    for form, beta in FORMS:
        agree(inst["X"], M, inst["y"], form, beta, True)


def test_infeasible_program_is_a_clear_error():
    rng = np.random.default_rng(10)
    X = data.make_X(30, 3, 0, rng)
    M = (X @ rng.standard_normal(3) >= 0)[:, None]  # one pattern: blocks span 6 of 30 dims
    with pytest.raises(SolveFailed, match="infeasible"):
        solver.solve_relu(X, M, rng.standard_normal(30))


def test_bad_input():
    inst, M = skip_case(10, 4, 0)
    with pytest.raises(ValueError):
        solver.solve_relu(inst["X"], M, inst["y"], form="other")
    with pytest.raises(ValueError):
        solver.solve_relu(inst["X"], M[:5], inst["y"])


@pytest.mark.parametrize("n,d,trial", [(30, 30, 1), (60, 70, 4)])
def test_stalled_ipm_cells_certify(n, d, trial):
    """Paper-scale exact skip cells (rec_rate_skip.py --form exact, seed 0) whose interior-point
    method stalls just above CERT_TOL (gap 1.7e-8, 1.4e-8): the retry from the support and
    active blocks certifies them."""
    rng = utils.cell_rng(0, n, d, trial)
    inst = data.skip_instance(n, d, 0, 0, 0.0, rng)
    M = patterns.skip_patterns(inst["X"], rng)
    sol = solver.solve_relu(inst["X"], M, inst["y"], "exact")
    cert = sol.certificate
    assert max(cert[key] for key in ("residual", "dual_violation", "gap", "cone_violation")) <= solver.CERT_TOL
    solver.certify_relu(inst["X"], M, inst["y"], sol, "exact")


@pytest.mark.parametrize("form,beta", FORMS)
def test_retry_path_agrees(form, beta, monkeypatch):
    """The retry after a loose certificate (forced here) returns the same optimum."""
    inst, M = skip_case(20, 20, 0)  # not recovered: a large working set, a small support
    base = solver.solve_relu(inst["X"], M, inst["y"], form, beta)
    calls = []

    def excess(cert):  # the first solve looks loose, the retry better: the retry is taken
        calls.append(cert)
        return 2e3 if len(calls) == 1 else 1e3

    patch_solver(monkeypatch, "cert_excess", excess)
    sol = solver.solve_relu(inst["X"], M, inst["y"], form, beta)
    assert abs(sol.objective - base.objective) <= 1e-7 * max(abs(base.objective), 1e-9)
    assert len(calls) >= 2  # the first certificate, then the retry's (then the polish's)
    assert recovery.skip_recovered(sol, inst["w"]) == recovery.skip_recovered(base, inst["w"])


@pytest.mark.parametrize("skip", [True, False])
def test_polish_on_the_support(skip):
    """The Newton polish of a cone-free basis pursuit on its support (the last resort after a
    stalled interior-point method) keeps the optimum and tightens the certificate."""
    inst, M = skip_case(20, 20, 0)
    F = solver.relu_family(inst["X"], M, "relaxed", None, skip)
    prog = Program(inst["y"] / np.linalg.norm(inst["y"]))
    out, Wfull, cert = fallbacks.solve_scaled(F, prog, [0] if skip else ())
    pol = fallbacks.polish(F, prog, out, Wfull)
    assert pol is not None
    pcert = pol.cert
    assert certificate.cert_excess(pcert) <= 1
    assert abs(pcert["primal"] - cert["primal"]) <= 1e-7 * cert["primal"]
    assert np.all(np.linalg.norm(pol.W, axis=1)[np.linalg.norm(Wfull, axis=1) == 0] == 0)


@pytest.mark.parametrize("beta", [None, 1e-3])
@pytest.mark.parametrize("seed", [0, 1])
def test_polish_with_cones(beta, seed):
    """The polish of the exact form (support blocks with active cone rows; basis pursuit and
    lasso) takes a point 1e-8 off the optimum, whose certificate fails, back to a tight one
    with the same objective."""
    inst, M = skip_case(20, 20, seed)
    ynorm = np.linalg.norm(inst["y"])
    prog = Program(inst["y"] / ynorm, None if beta is None else beta / ynorm)
    F = solver.relu_family(inst["X"], M, "exact", beta, True)
    out, Wfull, cert = fallbacks.solve_scaled(F, prog, ())
    norms = np.linalg.norm(Wfull, axis=1)
    S = np.flatnonzero(norms > 1e-6 * norms.max())
    active = [(F.g_matrix(g) @ Wfull[g] <= 1e-9 * norms[g]).sum() for g in S if F.cone[g]]
    assert sum(active) > 0
    rng = np.random.default_rng(1)
    Wp = Wfull.copy()
    Wp[S] += 1e-8 * rng.standard_normal((len(S), F.d)) * norms[S, None]
    outp = replace(out, lam=out.lam + 1e-8 * rng.standard_normal(F.n))
    v, _ = duals.dual_values(F, outp.lam)
    assert certificate.cert_excess(certificate.certificate(F, prog, Wp, outp.lam, v)) > 1
    pol = fallbacks.polish(F, prog, outp, Wp)
    assert pol is not None and certificate.cert_excess(pol.cert) <= 1
    assert abs(pol.cert["primal"] - cert["primal"]) <= 1e-8 * cert["primal"]


def test_a_tiny_block_outside_its_cone_is_projected(monkeypatch):
    """A block 1e-9 of the largest, outside its cone (the interior-point method's rounding,
    judged by the certificate relative to the block's own norm), fails the certificate; the
    solver moves it onto its cone (before any retry) and certifies the same optimum."""
    inst, M = skip_case(20, 20, 0)
    F = solver.relu_family(inst["X"], M, "exact", None, True)
    base = solver.solve_blocks(F, inst["y"])
    solve_scaled = fallbacks.solve_scaled
    seen = []

    def noisy(F, prog, init):
        out, Wfull, cert = solve_scaled(F, prog, init)
        norms = np.linalg.norm(Wfull, axis=1)
        g = next(g for g in range(F.k) if F.cone[g] and norms[g] == 0)
        G = F.g_matrix(g)
        Wfull = Wfull.copy()
        Wfull[g] = -1e-9 * norms.max() * G[0] / np.linalg.norm(G[0])
        cert = certificate.certificate(F, prog, Wfull, out.lam, out.v)
        seen.append(cert["cone_violation"])
        return fallbacks.Candidate(replace(out, W=Wfull[out.ws]), Wfull, cert)

    patch_solver(monkeypatch, "solve_scaled", noisy)
    patch_solver(monkeypatch, "polish", lambda *args: None)  # (it would drop the block)
    sol = solver.solve_blocks(F, inst["y"])
    assert len(seen) == 1 and seen[0] > 1e-3  # no retry; judged against the block's own norm
    assert sol.certificate["cone_violation"] <= solver.CERT_TOL
    assert abs(sol.objective - base.objective) <= 1e-8 * base.objective


@pytest.mark.parametrize("n,d,k,seed", [(150, 20, 2, 2), (200, 30, 2, 3), (80, 20, 1, 2)])
def test_polish_keeps_lam_dual_feasible_beyond_the_support(n, d, k, seed):
    """With n > |S| d the polish's Newton system leaves lam free along the null space of the
    support's A^T: the step there must be the least-norm one (0), or lam leaves the dual
    feasible set of the blocks outside the support (this once rejected every relaxed
    normalization optimum at n >> d, sending recovered cells to the cone IPM; these instances
    moved lam by 0.04 to 0.4)."""
    rng = np.random.default_rng(seed)
    inst = data.norm_instance(n, d, k, 0, 0, 0.0, rng)
    B, _, _ = recovery.norm_setup(inst, rng)
    F = solver.norm_family(B, "relaxed")
    prog = Program(inst["y"] / np.linalg.norm(inst["y"]))
    out, Wfull, cert = fallbacks.solve_scaled(F, prog, ())
    support = np.linalg.norm(Wfull, axis=1) > 1e-6 * np.linalg.norm(Wfull, axis=1).max()
    assert F.n > support.sum() * F.d
    pol = fallbacks.polish(F, prog, out, Wfull)
    assert pol is not None
    assert pol.cert["dual_violation"] <= solver.CERT_TOL
    assert certificate.cert_excess(pol.cert) <= 1
    assert np.linalg.norm(pol.point.lam - out.lam) <= 1e-5


@pytest.mark.parametrize("beta", [None, 1e-3])
def test_relaxation_settles_the_cone_program(beta):
    """Where the relaxed optimum is unique and meets the cones (planted neuron recovered by the
    relaxed program), it is the cone program's optimum: no cone IPM, same answer as CVXPY
    (and the lasso, whichever way it goes, agrees with CVXPY)."""
    rng = np.random.default_rng(3)
    inst = data.norm_instance(40, 4, 1, 0, 0, 0.0, rng)
    B, cols, planted = recovery.norm_setup(inst, rng)
    F = solver.norm_family(B, "exact", beta)
    P = B.U.shape[0]
    y = inst["y"] / np.linalg.norm(inst["y"])
    rho = None if beta is None else beta / np.linalg.norm(inst["y"])
    relaxation = entry.Relaxation(solver.norm_family(B, "relaxed"), np.arange(P), P + np.arange(P))
    found, init = entry.via_relaxation(F, Program(y, rho), relaxation)
    if beta is None:  # (the lasso's relaxed optimum carries small extra blocks outside the cones)
        assert found is not None and certificate.cert_excess(found.cert) <= 1
    else:
        assert found is None or certificate.cert_excess(found.cert) <= 1
    sol = solver.solve_norm(B, inst["y"], "exact", beta)
    ref = cvx.solve_norm(B, inst["y"], "exact", beta, solver="CLARABEL")
    assert abs(sol.objective - ref.objective) <= 1e-6 * abs(ref.objective)
    assert sol.unique
    if beta is None:
        assert recovery.blocks_recovered(sol, planted) and recovery.blocks_recovered(ref, planted)


@pytest.mark.parametrize("kind", ["norm", "skip"])
def test_screened_dual_values_are_exact_where_they_matter(kind):
    """The batched projected-gradient screen and the kept multipliers give upper bounds on the
    cone blocks' dual values; every value that can matter (>= 1 - TIE_TOL) is the NNLS one."""
    rng = np.random.default_rng(5)
    if kind == "norm":
        inst = data.norm_instance(60, 8, 2, 0, 0, 0.0, rng)
        B, _, _ = recovery.norm_setup(inst, rng)
        F = solver.norm_family(B, "exact")
    else:
        inst, M = skip_case(60, 8, 5)
        F = solver.relu_family(inst["X"], M, "exact")
    cone = np.flatnonzero(F.cone)
    for scale in (0.5, 2.0, 2.0):  # the third call starts from the multipliers kept by the second
        lam = scale * rng.standard_normal(F.n) / np.sqrt(F.n)
        v, _ = duals.dual_values(F, lam)
        U = F.adjoint(lam)
        exact = np.array([duals.cone_dual_norm(F, g, U[g])[0] for g in cone])
        assert np.all(v[cone] >= exact - 1e-12)
        matter = v[cone] >= 1 - solver.TIE_TOL
        assert np.allclose(v[cone][matter], exact[matter], rtol=0, atol=1e-12)
        assert np.all(exact[~matter] < 1 - solver.TIE_TOL)


def test_paired_schur_rows():
    """A block and its opposite-sign copy share one Schur factor S with S^T S = T^T T + T'^T T'
    (Cholesky, or QR where the sum is singular); blocks without their copy keep T itself. The
    rows R = [S_b A_b^T] give R^T R = the sum of the pairs' Schur terms A_b S_b^T S_b A_b^T."""
    rng = np.random.default_rng(0)
    d, n = 6, 9
    T = np.tril(rng.standard_normal((5, d, d)))
    T[3] = 0.0
    T[4, :, 2:] = 0.0  # blocks 3 and 4: a singular sum, Cholesky fails, QR takes over
    ci = np.array([10, 11, 12, 13, 14])
    F = solver.relu_family(rng.standard_normal((8, d)), np.ones((8, 8), bool), "exact").subset(ci)
    assert F.twin.tolist() == [-1, -1, -1, -1, -1]
    F.twin = np.array([2, -1, 0, 4, 3])
    lead, mate = F.pairs(np.arange(5))
    assert lead.tolist() == [0, 1, 3] and mate.tolist() == [2, -1, 4]
    At = rng.standard_normal((3, d, n))
    R = newton.schur_rows(T, lead, mate, At).reshape(3, d, n)
    for b, (g, m) in enumerate(zip(lead, mate)):
        want = T[g].T @ T[g] + (T[m].T @ T[m] if m >= 0 else 0)
        assert np.allclose(R[b].T @ R[b], At[b].T @ want @ At[b], atol=1e-12)
    assert np.allclose(R[1], T[1] @ At[1], atol=1e-14)


def test_subset_keeps_opposite_sign_copies():
    rng = np.random.default_rng(1)
    inst = data.norm_instance(40, 5, 2, 0, 0, 0.0, rng)
    B, _, _ = recovery.norm_setup(inst, rng)
    F = solver.norm_family(B, "exact")
    P = F.k // 2
    sub = F.subset([3, P + 7, P + 3, 5])
    assert sub.twin.tolist() == [2, -1, 0, -1]
    assert np.array_equal(sub.base[[0, 2]], [sub.base[0]] * 2) and sub.sg[0] == -sub.sg[2]
