# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
DEMO := results/demo

.PHONY: install demo test lint figures figures-quick
install:
	$(PYTHON) -m pip install -q -r requirements.txt

# The relaxed skip program on a small grid (n, d <= 80, 40; 5 trials): a heatmap in about a minute.
demo: install
	$(PYTHON) rec_rate_skip.py --n 80 --d 40 --step 5 --sample 5 --save_folder $(DEMO)
	$(PYTHON) plot_phase.py $(DEMO)/rec_rate_skip_n80_d40_w0_X0_sample5_step5.npy --theory --boundary --out $(DEMO)/rec_rate_skip.png

test: install
	$(PYTHON) -m pytest -q tests

lint: install
	$(PYTHON) -m ruff check .

# Every figure of the issue (reproduce.py): paper scale (hours), or the CI grid (minutes).
figures: install
	$(PYTHON) reproduce.py

figures-quick: install
	$(PYTHON) reproduce.py --quick
