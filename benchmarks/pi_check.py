"""The Raspberry Pi path for real: an arm64 Debian bookworm root run under qemu-user.

Builds (once, cached outside the repository) an arm64 Debian bookworm root with Debian's
python3 and python3-venv, installs the project in it exactly as README's Pi section says
(INSTALL below), runs ``python -m edge_runtime detect / evaluate / benchmark`` there and on this
host on the same models and images, and compares the detections. Needs root (debootstrap,
chroot, binfmt_misc), a Debian mirror (``--mirror``, else the one this machine's apt uses:
:func:`debian_mirror`) and PyPI. Latencies under emulation are NOT Pi figures; they only show
that the benchmark runs.

    sudo .venv/bin/python benchmarks/pi_check.py --models a_float32.tflite b_int8.tflite
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from edge_runtime.files import write_json  # noqa: E402  (the repository's, run as a script)
DEFAULT_ROOT = os.path.join(os.path.expanduser("~"), ".cache", "frontier", "pi-bookworm-arm64")
BINFMT = "/proc/sys/fs/binfmt_misc"
# the arm64 ELF magic/mask of Debian's qemu-user-static; F: the kernel opens qemu now, so it
# runs inside a chroot that has no qemu binary
AARCH64_REGISTRATION = (
    r":qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00"
    r":\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"
    ":/usr/bin/qemu-aarch64-static:FP")
# README's Pi section, line for line (tests/test_pi_check.py checks that README still says so);
# run in the copy of the repository, as user "pi" would
INSTALL = ["sudo apt install python3-venv",
           "python3 -m venv ~/frontier-venv && . ~/frontier-venv/bin/activate",
           'pip install ".[edge]"']
# float32: every detection the same box (IoU >= 0.999 beyond the files' rounding) and score
# (XNNPACK's NEON and AVX2 float kernels round differently: on 5766 detections of 100 images,
# 3 differed by 1.2e-4 to 1.8e-4, the rest by at most 1e-4), the same AP; int8: --int8-* below
FLOAT32_TOL = {"min_iou": 0.999, "max_score_diff": 5e-4, "within": 1.0, "unpaired": 0.0,
               "min_score": 0.0, "max_ap_diff": 1e-4}
# --cpu: qemu's CPU model -> (MIDR part number, boards with that core)
CPUS = {"cortex-a53": ("0xd03", "Raspberry Pi 3 / Zero 2 W"),
        "cortex-a72": ("0xd08", "Raspberry Pi 4 / 400"), "cortex-a76": ("0xd0b", "Raspberry Pi 5")}
# Debian release suites that debootstrap can start from (not -security, -updates, -backports)
DEBIAN_SUITES = ("buster", "bullseye", "bookworm", "trixie", "forky", "sid", "oldstable",
                 "stable", "testing", "unstable")
T0 = time.time()


def _one_line_sources(text: str) -> list[dict]:
    """``deb [options] URI SUITE [COMPONENT...]`` lines (sources.list, *.list)."""
    found = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) < 3 or words[0] != "deb":
            continue
        i = 1
        if words[1].startswith("["):  # [arch=amd64 signed-by=...]: may hold spaces
            while i < len(words) and not words[i].endswith("]"):
                i += 1
            i += 1
        if len(words) >= i + 2:
            found.append({"uris": [words[i]], "suites": [words[i + 1]],
                          "components": words[i + 2:]})
    return found


def _deb822_sources(text: str) -> list[dict]:
    """Stanzas of a deb822 ``*.sources`` file: Types, URIs, Suites, Components (fields may
    continue on indented lines), Enabled."""
    found = []
    for stanza in re.split(r"\n\s*\n", text):
        fields, key = {}, None
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0] in " \t" and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if ("deb" in fields.get("types", "").split()
                and fields.get("enabled", "yes").lower() != "no"):
            found.append({"uris": fields.get("uris", "").split(),
                          "suites": fields.get("suites", "").split(),
                          "components": fields.get("components", "").split()})
    return found


def apt_sources(etc: str = "/etc/apt") -> list[dict]:
    """This machine's binary apt sources, in apt's order (``sources.list``, then
    ``sources.list.d/*.list`` and ``*.sources`` by name): ``{"uris", "suites",
    "components"}`` each; commented lines, ``deb-src`` and ``Enabled: no`` left out."""
    files = [os.path.join(etc, "sources.list")] + sorted(
        glob.glob(os.path.join(etc, "sources.list.d", "*.list"))
        + glob.glob(os.path.join(etc, "sources.list.d", "*.sources")))
    found = []
    for path in files:
        try:
            with open(path, errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        found += (_deb822_sources if path.endswith(".sources") else _one_line_sources)(text)
    return found


def debian_mirror(etc: str = "/etc/apt") -> str | None:
    """The first http(s) source of :func:`apt_sources` that serves a Debian release suite
    (DEBIAN_SUITES) with ``main``: the mirror debootstrap can fetch bookworm from. None if the
    machine's apt has none (another distribution: pass ``--mirror``)."""
    for source in apt_sources(etc):
        if "main" in source["components"] and set(source["suites"]) & set(DEBIAN_SUITES):
            for uri in source["uris"]:
                if uri.startswith(("http://", "https://")):
                    return uri.rstrip("/")
    return None


def die(message: str):
    print(f"pi_check: {message}", file=sys.stderr)
    sys.exit(2)


def stage(message: str):
    print(f"[{time.time() - T0:7.1f} s] {message}", flush=True)


def run_logged(cmd, log: str, what: str, **kwargs):
    """Runs ``cmd`` with its output in ``log``; on failure, the log's tail and a one-line error."""
    with open(log, "ab") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, **kwargs).returncode
    if rc:
        with open(log, errors="replace") as f:
            sys.stderr.write("".join(f.readlines()[-15:]))
        die(f"{what} failed (exit {rc}); full log: {log}")


def ensure_host():
    """qemu-aarch64 via binfmt_misc with the F flag, debootstrap, root."""
    if os.geteuid() != 0:
        die("needs root (debootstrap, chroot, mount, binfmt_misc): run it with sudo")
    missing = [t for t in ("qemu-aarch64-static", "debootstrap", "unshare")
               if not shutil.which(t) and not os.path.exists(f"/usr/sbin/{t}")]
    if missing:
        if not shutil.which("apt-get"):
            die(f"missing {', '.join(missing)} and no apt-get to install them")
        stage(f"installing qemu-user-static debootstrap binfmt-support (missing {missing})")
        run_logged(["apt-get", "install", "-y", "qemu-user-static", "debootstrap",
                    "binfmt-support"], "/tmp/pi_check_apt.log", "apt-get install")
    if not os.path.exists(f"{BINFMT}/register"):
        if subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", BINFMT]).returncode:
            die(f"binfmt_misc is not mounted and cannot be ({BINFMT}): run the container with "
                "--privileged or mount it on the host")
    entry = f"{BINFMT}/qemu-aarch64"
    if not os.path.exists(entry):
        if shutil.which("update-binfmts"):
            subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], capture_output=True)
        if not os.path.exists(entry):
            try:
                with open(f"{BINFMT}/register", "w") as f:
                    f.write(AARCH64_REGISTRATION)
            except OSError as e:
                die(f"cannot register qemu-aarch64 in {BINFMT} ({e.strerror})")
    with open(entry) as f:
        text = f.read()
    flags = next((l.split(":", 1)[1].strip() for l in text.splitlines()
                  if l.startswith("flags:")), "")
    if not text.startswith("enabled"):
        die(f"{entry} is disabled: `echo 1 > {entry}`")
    if "F" not in flags:
        die(f"{entry} is registered without the F (fix-binary) flag (flags: {flags!r}), so "
            f"qemu cannot be found inside a chroot: `echo -1 > {entry}` and register it again "
            "with flags FP (Debian's qemu-user-static does)")


def write_cpuinfo(root: str, cpu: str):
    """An arm64 /proc/cpuinfo for the root: qemu-user 7.2 shows the host's x86 one, and
    LiteRT's cpuinfo library then finds no ARM core and crashes (SIGSEGV) in ruy and XNNPACK."""
    part, board = CPUS[cpu]
    text = "".join(f"processor\t: {i}\nFeatures\t: fp asimd cpuid\nCPU implementer\t: 0x41\n"
                   f"CPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: {part}\n"
                   "CPU revision\t: 3\n\n" for i in range(os.cpu_count() or 1))
    with open(os.path.join(root, "etc", "pi-check-cpuinfo"), "w") as f:
        f.write(text + f"model name\t: qemu-aarch64 {cpu} ({board}), emulated: not a Pi\n")


def root_cmd(root: str, script: str, env: dict | None = None) -> list[str]:
    """``script`` (sh -e) run in ``root`` with a clean environment, in a private mount
    namespace (nothing stays mounted after it) with /proc, /dev and /sys, and write_cpuinfo's
    file as /proc/cpuinfo (without /sys/devices/system/cpu, cpuinfo fails and LiteRT silently
    runs without XNNPACK)."""
    env = {"HOME": "/root", "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
           "LANG": "C.UTF-8", **(env or {})}
    setup = ('mount -t proc proc "$0/proc" && mount --rbind /dev "$0/dev" && '
             'mount -t sysfs sys "$0/sys" && { [ ! -f "$0/etc/pi-check-cpuinfo" ] || mount '
             '--bind "$0/etc/pi-check-cpuinfo" "$0/proc/cpuinfo"; } && '
             'exec chroot "$0" /usr/bin/env -i "$@"')
    return (["unshare", "--mount", "--propagation", "private", "sh", "-c", setup, root]
            + [f"{k}={v}" for k, v in env.items()] + ["/bin/sh", "-ec", script])


def build_root(root: str, mirror: str, log: str) -> float | None:
    """The cached root; returns the seconds its build took (None: it was cached)."""
    if os.path.exists(os.path.join(root, ".pi-check-ready")):
        stage(f"cached arm64 root: {root}")
        return None
    t, tmp = time.time(), root + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)  # a build that was interrupted
    stage(f"debootstrap 1/2: download arm64 bookworm from {mirror} -> {tmp}")
    run_logged(["debootstrap", "--foreign", "--arch=arm64", "--variant=minbase",
                "--include=python3,ca-certificates", "bookworm", tmp, mirror],
               log, f"debootstrap from {mirror} (no network to the Debian mirror?)")
    stage("debootstrap 2/2: unpack and configure under qemu-aarch64 (minutes)")
    run_logged(["unshare", "--mount", "chroot", tmp, "/debootstrap/debootstrap",
                "--second-stage"], log, "debootstrap --second-stage under qemu-aarch64")
    shutil.copy("/etc/resolv.conf", os.path.join(tmp, "etc", "resolv.conf"))
    stage(f"README: {INSTALL[0]} (apt-get, emulated)")
    run_logged(root_cmd(tmp, "apt-get update -q && apt-get install -y -q python3-venv"), log,
               "apt-get install python3-venv in the arm64 root")
    open(os.path.join(tmp, ".pi-check-ready"), "w").close()
    os.rename(tmp, root)
    seconds = time.time() - t
    stage(f"arm64 root built in {seconds:.0f} s")
    return seconds


def install(root: str, log: str) -> float:
    """edge_runtime/ and setup.py (README: "or just edge_runtime/ and setup.py") copied to
    /root/frontier in the root, then README's venv and pip lines there. Returns seconds."""
    t, dst = time.time(), os.path.join(root, "root", "frontier")
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(os.path.join(REPO, "edge_runtime"), os.path.join(dst, "edge_runtime"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(os.path.join(REPO, "setup.py"), dst)
    shutil.copy("/etc/resolv.conf", os.path.join(root, "etc", "resolv.conf"))
    env = {}
    if os.path.isdir("/usr/local/share/ca-certificates") and os.listdir(
            "/usr/local/share/ca-certificates"):
        # this host trusts a local CA (a TLS-inspecting proxy?): pip in the root needs it too
        shutil.copy("/etc/ssl/certs/ca-certificates.crt", os.path.join(root, "etc", "ssl",
                                                                       "host-ca.crt"))
        env["PIP_CERT"] = "/etc/ssl/host-ca.crt"
    stage(f"README: {' && '.join(INSTALL[1:])} (emulated; minutes the first time)")
    run_logged(root_cmd(root, "cd ~/frontier && " + " && ".join(INSTALL[1:]), env), log,
               'pip install ".[edge]" in the arm64 root')
    seconds = time.time() - t
    stage(f"installed in {seconds:.0f} s")
    return seconds


def stage_inputs(models, data, split, images, dst):
    """Copies the models (+ sidecars), the split's annotations and images into ``dst``."""
    shutil.rmtree(dst, ignore_errors=True)
    os.makedirs(os.path.join(dst, "models"))
    for m in models:
        for f in (m, os.path.splitext(m)[0] + ".json"):
            if os.path.exists(f):
                shutil.copy(f, os.path.join(dst, "models"))
    ann = os.path.join(data, "annotations", f"instances_{split}.json")
    folders = [d for d in (split, f"images/{split}", f"{split}2017")
               if os.path.isdir(os.path.join(data, d))]
    if not os.path.exists(ann) or not folders:
        die(f"{data}: no annotations/instances_{split}.json with a {split}/ image folder")
    shutil.copytree(os.path.join(data, "annotations"), os.path.join(dst, "data", "annotations"),
                    ignore=lambda d, names: [n for n in names if n != f"instances_{split}.json"])
    shutil.copytree(os.path.join(data, folders[0]), os.path.join(dst, "data", folders[0]))
    names = sorted(n for n in os.listdir(os.path.join(dst, "data", folders[0]))
                   if n.lower().endswith((".jpg", ".jpeg", ".png")))[:images]
    return [os.path.join("data", folders[0], n) for n in names]


def edge_commands(python, models, images, args) -> list[list[str]]:
    """The same edge_runtime commands for both machines (paths relative to the work folder)."""
    common = ["--threads", "1", "--no-progress"] + (["--no-xnnpack"] if args.no_xnnpack else [])
    cmds = []
    for m in models:
        name = os.path.splitext(os.path.basename(m))[0]
        model = os.path.join("models", os.path.basename(m))
        cmds.append([python, "-m", "edge_runtime", "detect", model, *images, "--score",
                     str(args.score), "--json", f"out/{name}_detect.json", *common])
        cmds.append([python, "-m", "edge_runtime", "evaluate", model, "--data", "data",
                     "--split", args.split, "--max-images", str(args.eval_images),
                     "--json", f"out/{name}_eval.json", "--detections",
                     f"out/{name}_detections.json", *common])
    cmds.append([python, "-m", "edge_runtime", "benchmark",
                 *[os.path.join("models", os.path.basename(m)) for m in models],
                 "--runs", str(args.runs), "--warmup", "2", "--json", "out/benchmark.json",
                 *common])
    return cmds


def run_side(label, cmds, log, wrap=None, cwd=None) -> float:
    t = time.time()
    for i, cmd in enumerate(cmds):
        stage(f"{label} {i + 1}/{len(cmds)}: edge_runtime {cmd[3]} {os.path.basename(cmd[4])}")
        run_logged(wrap(cmd) if wrap else cmd, log, f"{label}: {' '.join(cmd[1:5])}", cwd=cwd)
    return time.time() - t


def iou(a, b) -> float:
    """IoU of two [x, y, w, h] boxes."""
    iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else float(a == b)


# the results files round boxes to 0.01 px ([x, y, w, h] each, so x + w to 0.02): two boxes
# that close are the same box as written, whatever their IoU (a 15 px box 0.01 px off: 0.9987)
WRITTEN_PX = 0.02 + 1e-9


def box_diff_px(a, b) -> float:
    """Largest difference of two [x, y, w, h] boxes' corners, in pixels."""
    return max(abs(a[0] - b[0]), abs(a[1] - b[1]), abs(a[0] + a[2] - b[0] - b[2]),
               abs(a[1] + a[3] - b[1] - b[3]))


def compare(host: list[dict], arm: list[dict], tol: dict) -> dict:
    """Pairs each host detection with the unpaired arm64 one of the same image and class with
    the highest IoU (host detections in score order); both sides' scores >= tol's
    ``min_score``. ``min_iou`` counts pairs within the files' 0.01 px rounding as IoU 1
    (``min_iou_raw``: as written); ``within_tol``: pairs within tol's IoU and score bounds."""
    host = [d for d in host if d["score"] >= tol["min_score"]]
    arm = [d for d in arm if d["score"] >= tol["min_score"]]
    pool = {}
    for d in arm:
        pool.setdefault((d["image_id"], d["category_id"]), []).append(d)
    ious, raw, px, diffs, unpaired = [], [], [], [], 0
    for d in sorted(host, key=lambda d: -d["score"]):
        cands = pool.get((d["image_id"], d["category_id"]), [])
        overlaps = [iou(d["bbox"], c["bbox"]) for c in cands]
        i = max(range(len(cands)), key=overlaps.__getitem__, default=None)
        if i is None or overlaps[i] < 0.5:
            unpaired += 1
            continue
        best = cands.pop(i)
        raw.append(overlaps[i])
        px.append(box_diff_px(d["bbox"], best["bbox"]))
        ious.append(1.0 if px[-1] <= WRITTEN_PX else raw[-1])
        diffs.append(abs(d["score"] - best["score"]))
    unpaired += sum(len(v) for v in pool.values())
    return {"host": len(host), "arm64": len(arm), "paired": len(ious), "unpaired": unpaired,
            "min_iou": round(min(ious, default=1.0), 6),
            "min_iou_raw": round(min(raw, default=1.0), 6),
            "max_box_diff_px": round(max(px, default=0.0), 3),
            "score_diffs_over_1e-4": sum(d > 1e-4 + 1e-9 for d in diffs),
            "within_tol": sum(i >= tol["min_iou"] and d <= tol["max_score_diff"] + 1e-9
                              for i, d in zip(ious, diffs)),
            "max_score_diff": round(max(diffs, default=0.0), 6),
            "mean_score_diff": round(sum(diffs) / len(diffs), 7) if diffs else 0.0}


def within(c: dict, tol: dict) -> bool:
    """tol's fraction of the host's detections paired within its bounds, few enough unpaired,
    and something compared at all."""
    return (c["paired"] > 0 and c["within_tol"] >= tol["within"] * c["host"] - 1e-9
            and c["unpaired"] <= tol["unpaired"] * c["host"] + 1e-9)


def load(path):
    with open(path) as f:
        return json.load(f)


def is_int8(model: str) -> bool:
    sidecar = os.path.splitext(model)[0] + ".json"
    if os.path.exists(sidecar):
        return load(sidecar).get("input", {}).get("dtype") == "uint8"
    return "int8" in os.path.basename(model)


def main(argv=None) -> int:
    demo = [os.path.join(REPO, "runs", "demo", f"model_{q}.tflite") for q in ("float32", "int8")]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] + " Prints a table; "
                                "writes OUT/pi_check.json.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--models", nargs="+", default=[m for m in demo if os.path.exists(m)],
                   help="float32 and/or int8 .tflite detectors (default: make demo's, if there)")
    p.add_argument("--data", default=os.path.join(REPO, "data", "shapes_small"),
                   help="a small COCO-format dataset (its --split is copied into the root)")
    p.add_argument("--split", default="val")
    p.add_argument("--images", type=int, default=4, help="images for detect")
    p.add_argument("--eval-images", type=int, default=20, help="images for evaluate")
    p.add_argument("--runs", type=int, default=10, help="benchmark's timed runs")
    p.add_argument("--score", type=float, default=0.3, help="detect's score threshold")
    p.add_argument("--no-xnnpack", action="store_true", help="both sides without XNNPACK")
    p.add_argument("--cpu", default="cortex-a72", choices=sorted(CPUS),
                   help="the emulated core (QEMU_CPU): a72 is a Pi 4's, a76 a Pi 5's")
    # LiteRT's int8 kernels round differently per ISA (XNNPACK's; the built-in ones, with
    # --no-xnnpack, more so), and an activation one step off moves a score by steps of 1/255
    # or lets NMS keep a neighbouring anchor: on 100 images, 85% of the detections >= 0.3
    # were identical, 95% within 0.02 and IoU 0.9, AP 0.1663 vs 0.1665
    p.add_argument("--int8-score-tol", type=float, default=0.02,
                   help="int8: a pair's largest score difference (detections >= --score)")
    p.add_argument("--int8-iou", type=float, default=0.9, help="int8: a pair's smallest IoU")
    p.add_argument("--int8-within", type=float, default=0.9,
                   help="int8: fraction of detections that must pair within those bounds")
    p.add_argument("--int8-unpaired", type=float, default=0.05,
                   help="int8: fraction of detections allowed without a partner")
    p.add_argument("--int8-ap", type=float, default=0.005,
                   help="int8: largest difference of evaluate's AP")
    p.add_argument("--root", default=os.environ.get("PI_CHECK_ROOT", DEFAULT_ROOT),
                   help="the cached arm64 root (env PI_CHECK_ROOT)")
    p.add_argument("--mirror", help="the Debian archive debootstrap downloads arm64 bookworm "
                   "from (default: the Debian mirror of this machine's apt sources)")
    p.add_argument("--out", default=os.path.join(REPO, "runs", "pi_check"))
    args = p.parse_args(argv)
    if not args.models:
        die("no models: pass --models A.tflite [B.tflite] (make demo writes runs/demo/...)")
    for m in args.models:
        if not os.path.isfile(m):
            die(f"{m}: model file not found")
    ensure_host()
    root, out = os.path.abspath(args.root), os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    os.makedirs(os.path.dirname(root), exist_ok=True)
    log = os.path.join(out, "pi_check.log")
    open(log, "w").close()
    mirror = args.mirror or debian_mirror()
    if not mirror and not os.path.exists(os.path.join(root, ".pi-check-ready")):
        die("no Debian mirror among this machine's apt sources (/etc/apt/sources.list, "
            "sources.list.d/*.list, *.sources) to build the arm64 root from: pass --mirror URL")
    build_s = build_root(root, mirror, log)
    write_cpuinfo(root, args.cpu)
    install_s = install(root, log)

    work = os.path.join(root, "root", "check")  # /root/check inside
    images = stage_inputs(args.models, args.data, args.split, args.images, work)
    os.makedirs(os.path.join(work, "out"))
    env = {"QEMU_CPU": args.cpu}
    arm_s = run_side("arm64", edge_commands("/root/frontier-venv/bin/python", args.models,
                                            images, args), log,
                     wrap=lambda c: root_cmd(root, "cd /root/check && " + shlex.join(c), env))
    host_work = os.path.join(out, "host")
    stage_inputs(args.models, args.data, args.split, args.images, host_work)
    os.makedirs(os.path.join(host_work, "out"))
    host_env_cmds = edge_commands(sys.executable, args.models, images, args)
    host_s = run_side("x86-64", host_env_cmds, log, cwd=host_work,
                      wrap=lambda c: ["env", f"PYTHONPATH={REPO}"] + c)
    shutil.rmtree(os.path.join(out, "arm64"), ignore_errors=True)
    shutil.copytree(os.path.join(work, "out"), os.path.join(out, "arm64"))

    results, ok = [], True
    a_bench = load(os.path.join(out, "arm64", "benchmark.json"))
    h_bench = load(os.path.join(host_work, "out", "benchmark.json"))
    for m in args.models:
        name, int8 = os.path.splitext(os.path.basename(m))[0], is_int8(m)
        tol = ({"min_iou": args.int8_iou, "max_score_diff": args.int8_score_tol,
                "within": args.int8_within, "unpaired": args.int8_unpaired,
                "min_score": args.score, "max_ap_diff": args.int8_ap} if int8
               else FLOAT32_TOL)
        row = {"model": m, "kind": "int8" if int8 else "float32", "tolerance": tol}
        # both resize bit-exactly on every ISA (evaluate: INTER_AREA, detect: INTER_LINEAR_
        # EXACT), so the interpreters are compared; an empty side would compare nothing
        for what, f in (("evaluate", "detections"), ("detect", "detect")):
            c = compare(load(os.path.join(host_work, "out", f"{name}_{f}.json")),
                        load(os.path.join(out, "arm64", f"{name}_{f}.json")), tol)
            row[what] = dict(c, passed=within(c, tol))
            ok &= row[what]["passed"]
        row["AP"] = {"x86_64": load(os.path.join(host_work, "out", f"{name}_eval.json"))["AP"],
                     "arm64": load(os.path.join(out, "arm64", f"{name}_eval.json"))["AP"]}
        row["AP"]["passed"] = abs(row["AP"]["x86_64"] - row["AP"]["arm64"]) <= tol["max_ap_diff"]
        ok &= row["AP"]["passed"]
        results.append(row)
    summary = {
        "tool": "benchmarks/pi_check.py", "root": root, "cached_root": build_s is None,
        "qemu_cpu": args.cpu,
        "xnnpack": not args.no_xnnpack, "seconds": {
            "root_build": build_s, "install": round(install_s, 1), "arm64_runs": round(arm_s, 1),
            "host_runs": round(host_s, 1), "total": round(time.time() - T0, 1)},
        "arm64_machine": a_bench["machine"], "models": results, "passed": ok,
        "latency_note": "arm64 latencies are under qemu-user emulation on "
                        f"{h_bench['machine']['cpu']}: NOT Raspberry Pi figures",
        "benchmark_end_to_end_median_ms": {
            side: {os.path.basename(r["model"]): r["stages_ms"]["end_to_end"]["median"]
                   for r in b["results"]} for side, b in (("arm64_emulated", a_bench),
                                                          ("x86_64", h_bench))}}
    write_json(os.path.join(out, "pi_check.json"), summary, indent=1)
    print(format_table(summary))
    print(f"wrote {os.path.join(out, 'pi_check.json')}")
    return 0 if ok else 1


def format_table(s: dict) -> str:
    sec = s["seconds"]
    lines = [f"arm64 root: {s['root']} ({'cached' if s['cached_root'] else 'built'}; "
             f"build {sec['root_build'] or 0:.0f} s, install {sec['install']:.0f} s, "
             f"arm64 runs {sec['arm64_runs']:.0f} s, host runs {sec['host_runs']:.0f} s, "
             f"total {sec['total']:.0f} s)",
             f"{'model':<36} {'kind':<7} {'cmd':<8} {'dets x86/arm':>13} {'unpaired':>8} "
             f"{'in bounds':>9} {'min IoU':>8} {'max dscore':>10} {'AP x86/arm':>13} ok"]
    for r in s["models"]:
        for what in ("detect", "evaluate"):
            c = r[what]
            lines.append(f"{os.path.basename(r['model']):<36} {r['kind']:<7} {what:<8} "
                         f"{c['host']:>6}/{c['arm64']:<6} {c['unpaired']:>8} "
                         f"{c['within_tol'] / max(c['host'], 1):>9.1%} {c['min_iou']:>8.4f} {c['max_score_diff']:>10.2g} "
                         f"{r['AP']['x86_64']:>6.3f}/{r['AP']['arm64']:<6.3f} "
                         f"{'yes' if c['passed'] and r['AP']['passed'] else 'NO'}")
    for side, ms in s["benchmark_end_to_end_median_ms"].items():
        lines.append(f"benchmark {side}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in ms.items()))
    lines.append(s["latency_note"])
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
