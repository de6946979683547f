VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0

.PHONY: venv test test-all demo clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# torch is pinned first so pip takes the local CPU wheel instead of the CUDA build.
$(VENV)/.installed: pyproject.toml $(PY)
	$(PY) -m pip install -q torch==$(TORCH_VERSION)
	$(PY) -m pip install -q -e ".[test]"
	# TrackEval without its opencv-python requirement (it would clash with opencv-python-headless)
	$(PY) -m pip install -q --no-deps trackeval
	touch $@

venv: $(VENV)/.installed

test: venv
	$(PY) -m pytest -q

test-all: venv
	$(PY) -m pytest -q -m ""

demo: venv
	$(VENV)/bin/yolact demo --out demo_out

clean:
	rm -rf $(VENV) demo_out build *.egg-info
