# Frontier: `make demo` (the main job) and `make test`. Both create .venv and install what they need.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# the export's metadata writer and the peer it is tested against; --no-deps: see setup.py
MEDIAPIPE := $(shell sed -n 's/^MEDIAPIPE = "\(.*\)"/\1/p' setup.py)
DEMO_DATA := data/shapes_small
LONG_DATA := data/shapes_large

.PHONY: install demo test test-all report sweep train-long train-long-compare train-long-two-stage two-stage-edge long-run proposal-sweep ensemble ensemble-members ensemble-300 clean android-demo serve-android-demo pi-check

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -e ".[train,edge,dev]"
	$(PY) -m pip install --disable-pip-version-check -q --no-deps $(MEDIAPIPE)
	touch $(STAMP)

install: $(STAMP)

## demo: generate the small shapes dataset, train SSD-MobileNet-v2 on it (backbone from the zoo
## SSD's), evaluate, export float32 / int8 / QAT-int8 TFLite models, score them with the
## interpreter, report (<= 20 min on 2 CPU cores, install included)
demo: $(STAMP)
	$(PY) -m train generate --size small --out $(DEMO_DATA)
	$(PY) -m train fit --config ssd_mobilenet_v2_shapes_demo --data $(DEMO_DATA) --out runs/demo
	$(PY) -m train evaluate --run runs/demo --data $(DEMO_DATA) --split val
	$(PY) -m convert --run runs/demo --quantize float32 --data $(DEMO_DATA) --out runs/demo/model_float32.tflite
	$(PY) -m convert --run runs/demo --quantize int8 --granularity per-tensor --data $(DEMO_DATA) --out runs/demo/model_int8.tflite
	$(PY) -m convert --run runs/demo --quantize qat --granularity per-tensor --qat-steps 50 --data $(DEMO_DATA) --out runs/demo/model_qat_int8.tflite
	$(PY) benchmarks/tf_latency.py --run runs/demo --json runs/demo/tf_benchmark.json
	$(PY) -m edge_runtime benchmark runs/demo/model_float32.tflite runs/demo/model_int8.tflite \
	  --threads 1,2 --json runs/demo/edge_benchmark.json --against runs/demo/tf_benchmark.json
	$(PY) benchmarks/mediapipe_peer.py runs/demo/model_int8.tflite runs/demo/model_float32.tflite \
	  --data $(DEMO_DATA) --images 100 --json runs/demo/mediapipe_peer.json
	for m in float32 int8 qat_int8; do \
	  $(PY) -m edge_runtime evaluate runs/demo/model_$$m.tflite --data $(DEMO_DATA) --json runs/demo/eval_model_$$m.json || exit 1; done
	$(PY) -m edge_runtime detect runs/demo/model_float32.tflite $$(ls $(DEMO_DATA)/val/*.jpg | head -4) \
	  --threads 1 --no-progress --out runs/demo/detections
	$(PY) -m train report --run runs/demo $(foreach f,$(wildcard runs/edge_*/two_stage_edge.json),--two-stage-edge $(f))
	@echo "report: runs/demo/report.md"
	@echo "which model within 20 ms here: python -m benchmarks pick --budget-ms 20 --device runs/demo/edge_benchmark.json --scores runs/demo/eval_model_*.json"

## test: the fast test suite (slow tests: make test-all)
test: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

test-all: $(STAMP)
	$(PY) -m pytest -q

## train-long: SSD-MobileNet-v2 on the large split (about 1.5 h on 2 CPU cores; resumable)
train-long: $(STAMP)
	$(PY) -m train generate --size large --out $(LONG_DATA)
	$(MAKE) long-run MODEL=ssd_mobilenet_v2

## train-long-compare: SSD-MobileNet-v1 and SSD-Inception-v2 with the same data and budget
train-long-compare: $(STAMP)
	$(PY) -m train generate --size large --out $(LONG_DATA)
	$(MAKE) long-run MODEL=ssd_mobilenet_v1
	$(MAKE) long-run MODEL=ssd_inception_v2

## train-long-two-stage: Faster R-CNN and R-FCN (MobileNet v2 x0.5) on the large split, each
## started from the zoo SSD's backbone (<= 3 h each on 2 CPU cores; resumable), then AP and
## TensorFlow latency at each number of proposals (paper Fig. 6)
PROPOSALS := 10 20 50 100 300
train-long-two-stage: $(STAMP)
	$(PY) -m train generate --size large --out $(LONG_DATA)
	$(MAKE) long-run MODEL=faster_rcnn_mobilenet_v2
	$(MAKE) long-run MODEL=rfcn_mobilenet_v2
	$(MAKE) proposal-sweep MODEL=faster_rcnn_mobilenet_v2
	$(MAKE) proposal-sweep MODEL=rfcn_mobilenet_v2

proposal-sweep:
	for n in $(PROPOSALS); do $(PY) -m train evaluate --run runs/long_$(MODEL) --data $(LONG_DATA) \
	  --split val --num-proposals $$n --no-progress || exit 1; done
	$(PY) benchmarks/tf_latency.py --run runs/long_$(MODEL) --num-proposals 300,100,50,20,10 \
	  --json runs/long_$(MODEL)/tf_latency_proposals.json
	$(PY) -m train report --run runs/long_$(MODEL)

## ensemble: the paper's ensemble table (Sec. 4.2) on the members kept in train/zoo/ensemble/:
## a held-out split for the selection, then each member alone, hand-selected vs diverse, with
## and without multicrop, and the detections merged two ways (resumable row by row)
## ensemble-members: remake those members: four Faster R-CNN fine-tuned from the zoo's
## (~15 min each on 2 CPU cores; resumable), packaged float16
comma := ,
MEMBERS := ratio1_seed1 ratio3_seed2 ratio2_seed3 iou_seed4
ZOO_TWO_STAGE := train/zoo/faster_rcnn_mobilenet_v2_shapes,train/zoo/rfcn_mobilenet_v2_shapes
ensemble-members: $(STAMP)
	$(PY) -m train generate --size large --out $(LONG_DATA)
	for m in $(MEMBERS); do $(PY) -m train fit --config faster_rcnn_mobilenet_v2_shapes_member_$$m \
	  --data $(LONG_DATA) --out runs/ensemble/$$m --no-progress || exit 1; \
	  rm -rf train/zoo/ensemble/$$m; \
	  $(PY) -m train package --run runs/ensemble/$$m --out train/zoo/ensemble/$$m --dtype float16 || exit 1; done

ensemble: $(STAMP)
	$(PY) -m train generate --size large --out $(LONG_DATA)
	$(PY) -m train generate --size small --seed 1 --out data/shapes_holdout
	$(PY) benchmarks/ensemble.py --data $(LONG_DATA) --select-data data/shapes_holdout \
	  --runs $(ZOO_TWO_STAGE),$(subst $(eval) ,$(comma),$(addprefix train/zoo/ensemble/,$(MEMBERS))) \
	  --hand train/zoo/faster_rcnn_mobilenet_v2_shapes,train/zoo/ensemble/ratio2_seed3,train/zoo/ensemble/iou_seed4 \
	  --similarity 0.9999 --num-proposals 50 --multicrop 2x2:0.6 --out benchmarks/results/ensemble

## ensemble-300: the diverse ensemble (as `make ensemble` chose it) at the sweep's resolution,
## 300, with and without multicrop, each member alone too (~20 min on 2 CPU cores)
DIVERSE := train/zoo/faster_rcnn_mobilenet_v2_shapes,train/zoo/ensemble/ratio2_seed3,train/zoo/rfcn_mobilenet_v2_shapes
ensemble-300: $(STAMP)
	$(PY) -m train generate --size large --out $(LONG_DATA)
	$(PY) -m train ensemble --runs $(DIVERSE) --data $(LONG_DATA) --num-proposals 50 --image-size 300 \
	  --score-members --out runs/ensemble_300/diverse --no-progress
	$(PY) -m train ensemble --runs $(DIVERSE) --data $(LONG_DATA) --num-proposals 50 --image-size 300 \
	  --multicrop 2x2:0.6 --out runs/ensemble_300/diverse_multicrop --no-progress
	for r in diverse diverse_multicrop; do mkdir -p benchmarks/results/ensemble/$${r}_at300 && \
	  cp runs/ensemble_300/$$r/eval.json benchmarks/results/ensemble/$${r}_at300/eval.json || exit 1; done

## two-stage-edge: a two-stage run on the edge (TFLite float32/int8 at 300/50/20 proposals and
## QAT at 300 (QAT_STEPS fine-tuning steps): AP,
## LiteRT at 1 and 2 threads vs TensorFlow) and its second-stage NMS two ways
## (TWO_STAGE_RUN=DIR, default the zoo Faster R-CNN) -> runs/edge_<name>/
TWO_STAGE_RUN ?= train/zoo/faster_rcnn_mobilenet_v2_shapes
QAT_STEPS ?= 200
two-stage-edge: $(STAMP)
	$(PY) -m train generate --size large --out $(LONG_DATA)
	$(PY) benchmarks/two_stage_edge.py --run $(TWO_STAGE_RUN) --data $(LONG_DATA) \
	  --proposals 300,50,20 --qat-steps $(QAT_STEPS) --out runs/edge_$(notdir $(TWO_STAGE_RUN))
	$(PY) benchmarks/two_stage_nms.py --run $(TWO_STAGE_RUN) --data $(LONG_DATA) \
	  --out runs/edge_$(notdir $(TWO_STAGE_RUN))

long-run:
	$(PY) -m train fit --config $(MODEL)_shapes_long --data $(LONG_DATA) --out runs/long_$(MODEL)
	$(PY) -m train evaluate --run runs/long_$(MODEL) --data $(LONG_DATA) --split val
	$(PY) -m train report --run runs/long_$(MODEL)

## sweep: measure the paper's grid on this machine, one process per cell, resumable
## (GRID=quick|mobile|paper|FILE.yaml; the zoo's trained models give their cells AP;
## SHARD=I/N: only shard I of N, I from 0, see README "On N machines")
GRID ?= mobile
sweep: $(STAMP)
	$(PY) -m train generate --size large --out $(LONG_DATA)
	$(PY) -m benchmarks sweep --grid $(GRID) --zoo --data $(LONG_DATA) --out benchmarks/results/sweep_$(GRID) $(if $(SHARD),--shard $(SHARD))

## report: tables, figures and the frontier from a sweep's results (`python -m benchmarks sweep`)
## (RESULTS=DIR, REPORT_OUT=DIR, EDGE="pi.json ...": edge_runtime benchmark JSON from a Pi/phone;
## ENSEMBLES="eval.json ...": train ensemble results, default make ensemble's four and ensemble-300's two)
RESULTS    ?= benchmarks/results/sweep_mobile
ENSEMBLES  ?= $(wildcard $(foreach r,diverse_multicrop_at300 diverse_at300 diverse_multicrop diverse hand_multicrop hand,benchmarks/results/ensemble/$(r)/eval.json))
REPORT_OUT ?= $(RESULTS)/report
report: $(STAMP)
	$(PY) -m benchmarks report --results $(RESULTS) --out $(REPORT_OUT) $(foreach f,$(EDGE),--edge $(f)) \
	  $(foreach f,$(ENSEMBLES),--ensemble $(f))

## pi-check: README's Raspberry Pi install and edge_runtime on an emulated arm64 Debian bookworm
## (root, qemu-user-static; the root is cached in ~/.cache/frontier), detections compared with
## this machine's (PI_MODELS="A.tflite B.tflite", default the demo's float32 and int8 models)
PI_MODELS ?= $(wildcard runs/demo/model_float32.tflite runs/demo/model_int8.tflite)
pi-check: $(STAMP)
	$(PY) benchmarks/pi_check.py $(if $(PI_MODELS),--models $(PI_MODELS))

## android-demo: the phone camera app (PWA, LiteRT.js) with the demo's exported models -> android_demo/dist
## (ANDROID_MODELS=DIR to bundle DIR/model_{float32,int8}.tflite instead of runs/demo)
ANDROID_MODELS ?=
android-demo: $(STAMP)
	$(PY) android_demo/build.py $(if $(ANDROID_MODELS),--models $(ANDROID_MODELS))

## serve-android-demo: serve it on http://127.0.0.1:8000 (phone: adb reverse tcp:8000 tcp:8000)
serve-android-demo: android-demo
	$(PY) -m http.server 8000 --bind 127.0.0.1 --directory android_demo/dist

clean:
	rm -rf runs data
