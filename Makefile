# The course's commands. `make lab` opens the course, `make test` proves it still works.
# Both create the local virtual environment .venv on first use (only python3 is needed).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
NB     ?= notebooks/*.ipynb
JOBS   ?= 2
THREADS ?= 2

# Same thread count and hashing everywhere (THREADS=1 for the one-thread portability run).
export OMP_NUM_THREADS := $(THREADS)
export MKL_NUM_THREADS := $(THREADS)
export PYTHONHASHSEED  := 0
export CUBLAS_WORKSPACE_CONFIG := :4096:8
export PYDEVD_DISABLE_FILE_VALIDATION := 1

NBVAL := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg

# Tests run two jobs at a time on 2 cores: an OpenMP thread that spins while it waits for work
# takes a core from the other job. Passive waiting changes no arithmetic (the same threads do
# the same sums) and, measured, two notebook-00 nbval runs side by side with 2 threads each
# took 7.0 s instead of 24.4 s (session 11). `make lab` keeps OpenMP's default.
test unit nbval portability ui execute: export OMP_WAIT_POLICY := PASSIVE

.PHONY: install lab lecture slides test unit nbval portability ui execute lint format api bench assets student grade assignments site colab clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	# Colab's ipywidgets, beside the pinned one, for tests/test_colab.py only
	$(BIN)/python -m pip install -q --no-deps --target $(VENV)/ipywidgets7 ipywidgets==7.7.1 ipython_genutils==0.2.0
	$(BIN)/python -c "import matplotlib.pyplot"  # warm the font cache once, not in a test
	# nbgrader is the instructors' command-line tool here: its JupyterLab menus stay off in
	# `make lab` (students' view); `make assignments` and the nbgrader CLI do not need them
	$(BIN)/jupyter labextension disable --level=sys_prefix @jupyter/nbgrader >/dev/null 2>&1
	for e in formgrader validate_assignment assignment_list course_list; do \
	  $(BIN)/jupyter server extension disable --sys-prefix nbgrader.server_extensions.$$e >/dev/null 2>&1; done
	# fmlib.lab_server: the kernel's websocket without Nagle's delay (40 ms a reply; its docstring)
	mkdir -p $(VENV)/etc/jupyter/jupyter_server_config.d
	echo '{"ServerApp": {"jpserver_extensions": {"fmlib.lab_server": true}}}' \
	  > $(VENV)/etc/jupyter/jupyter_server_config.d/fmlib.lab_server.json
	touch $@

lab: install  ## open the course in JupyterLab
	$(BIN)/jupyter lab notebooks/00_start_here.ipynb

lecture: install  ## make lecture NB=notebooks/03_continuity_equation.ipynb: present it as slides, widgets live
	$(BIN)/python tools/lecture.py $(NB)

slides: install  ## set every notebook's slide metadata (lecture mode); tests/test_slides.py checks it
	$(BIN)/python tools/slides.py

# `make test`'s three stages, each timed (tools/ci_times.py): the table of stage times and
# seconds per notebook is printed after each stage and kept in artifacts/ci/.
STAGE := $(BIN)/python tools/ci_times.py stage

test: install  ## unit tests + every notebook under nbval (native, then other CPUs' kernels) + browser tests
	@$(BIN)/python tools/ci_times.py reset  # this run's times only, as on a fresh clone
	FMLIB_CHECK_FIGURES=1 $(STAGE) "unit + native nbval + student editions + nbgrader" -- \
	  $(BIN)/python -m pytest -n $(JOBS) --dist loadscope $(NBVAL) -m "not ui" --durations=15 tests notebooks
	$(STAGE) "portability (other kernels; 1 and 2 threads)" -- $(BIN)/python tools/portability.py
	$(STAGE) "browser (JupyterLab, lecture, site)" -- \
	  $(BIN)/python -m pytest -n $(JOBS) --dist loadscope -m ui tests/ui -rs

portability: install  ## nbval under other CPUs' arithmetic (ATEN_CPU_CAPABILITY, MKL_CBWR) and 1 thread
	$(BIN)/python tools/portability.py

unit: install
	$(BIN)/python -m pytest -n $(JOBS) -m "not ui" tests

nbval: install  ## make nbval NB=notebooks/01_change_of_variables.ipynb
	$(BIN)/python -m pytest -n $(JOBS) --dist loadscope $(NBVAL) $(NB)

ui: install  ## the browser tests one at a time: the redraw rates `make bench` reads are measured alone
	$(BIN)/python -m pytest -m ui tests/ui -rs

execute: install  ## re-run notebooks in place to refresh stored outputs
	for nb in $(NB); do echo "== $$nb"; $(BIN)/jupyter execute --inplace "$$nb" || exit 1; done

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

api: install  ## docs/API.md from fmlib's docstrings (tests/test_api_doc.py checks it is current)
	$(BIN)/python tools/api_doc.py

student: install  ## regenerate student/ (the student edition) from notebooks/
	$(BIN)/python tools/editions.py

grade: install  ## make grade NB="student/*.ipynb": run notebooks, print every exercise's verdict
	$(BIN)/python -m fmlib.grade $(NB)

assignments: install  ## the nbgrader course in build/course (release/ checked equal to the student edition)
	$(BIN)/python tools/nbgrader_course.py --course build/course

site: install  ## the static site in build/site/ (offline, from stored outputs; sliders without a kernel)
	$(BIN)/python tools/build_site.py --out build/site

colab: install  ## refresh the notebooks' Colab badges and set-up lines from pyproject's URL
	$(BIN)/python tools/colab.py

bench: install  ## speed goals, against their targets (exit 1 when missed): redraw <= 0.1 s; >= 8 pictures/s in the browser (from the last `make ui`)
	$(BIN)/python benchmarks/widgets.py; k=$$?; $(BIN)/python benchmarks/browser_rates.py; b=$$?; \
	  test $$k -eq 0 && test $$b -eq 0

assets: install
	$(BIN)/python tools/make_assets.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
