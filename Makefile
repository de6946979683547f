VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0

.PHONY: venv test test-all demo clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# torch is pinned first so pip takes the local CPU wheel instead of the CUDA build.
$(VENV)/.installed: pyproject.toml tests/tools/no_deps_requirements.txt $(PY)
	$(PY) -m pip install -q torch==$(TORCH_VERSION)
	$(PY) -m pip install -q -e ".[test]"
	# TrackEval without its opencv-python requirement (it would clash with opencv-python-headless)
	$(PY) -m pip install -q --no-deps trackeval
	# label-studio-sdk and Datumaro without their OpenCV/Pillow pins (#31 tests; see the file)
	$(PY) -m pip install -q --no-deps "label-studio-sdk>=2.1,<2.2" "datumaro>=1.13,<1.14"
	$(PY) -m pip install -q -r tests/tools/no_deps_requirements.txt
	touch $@

# The Label Studio server for tests/test_label_studio_server.py, in its own venv (its pins clash)
LABEL_STUDIO_ENV := .venv-label-studio/.installed-1.23.2
$(LABEL_STUDIO_ENV): tests/tools/label_studio_env.sh
	rm -f $@ && LABEL_STUDIO_VERSION=1.23.2 tests/tools/label_studio_env.sh .venv-label-studio

venv: $(VENV)/.installed

test: venv $(LABEL_STUDIO_ENV)
	$(PY) -m pytest -q

test-all: venv $(LABEL_STUDIO_ENV)
	$(PY) -m pytest -q -m ""

demo: venv
	$(VENV)/bin/yolact demo --out demo_out

clean:
	rm -rf $(VENV) .venv-label-studio demo_out build *.egg-info
