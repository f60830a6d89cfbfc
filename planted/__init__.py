"""planted: exact recovery of planted neural networks, the library under the scripts.

Modules, each importing only the ones above it in this list (docs/reference.md states the
mathematics; each module names the section it implements):

    cli           argparse with one-line errors, flag types
    solution      the Solution every solver returns, SolveFailed
    data          planted data: X, planted neurons, labels, test sets
    clusters      the two-cluster probability experiment and its closed form
    patterns      hyperplane-arrangement patterns D_i, the all-ones pattern, Wendel's formula
    normblocks    normalization-layer blocks D_i X = U_i S_i and their cone matrices
    solver/       the fast certified solver (interior point on a working set)
    cvx           the CVXPY reference programs (loads cvxpy)
    solve         the one solve dispatch: solver="fast" or a CVXPY solver
    recovery      planted points, rec, dis_abs / dis_test, the map back to a network
    conditions    the neural isometry conditions (dual certificates at the planted point)
    transition    logistic fits of where a recovery transition sits, its finite-size analysis
    networks      PyTorch networks and their training (loads torch)
    llr           local linear recovery: tanh models, embeddings, model rank (loads torch)
    results       result names, sidecars, atomic writes, the cell store, loading
    plotting      what the figure scripts share

Nothing is imported here, so `import planted.data` costs what data costs.
"""
