"""Builds the phone camera demo into ``android_demo/dist/`` (``make android-demo``).

    python android_demo/build.py [--models DIR] [--model FILE.tflite ...] [--out DIR] [--npm-ci]

1. ``npm ci`` from ``package-lock.json`` (only when ``node_modules`` does not already hold exactly
   the locked packages, or with ``--npm-ci``; ``--prefer-offline``, so a warm npm cache builds
   without the network);
2. copies the app (``app/``), LiteRT.js's JS and WebAssembly from ``node_modules`` (no CDN), and
   the exported models: ``DIR/model_float32.tflite`` and ``DIR/model_int8.tflite``
   (``--models``, default ``runs/demo``, written by ``make demo``) and/or explicit ``--model``
   files; finding none is an error that says what to run. A model carries its labels and
   normalisation in its embedded TFLite metadata (the app reads them there); its ``.json``
   sidecar is copied too when there is one (older exports have only that);
3. writes ``build-info.json`` (models, LiteRT.js version), the icons, and the service worker's
   list of files to cache for offline use.
The output is assembled in a temporary folder and renamed over ``--out`` at the end.
Standard library only (the icons are written as PNG by hand).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import time
import zipfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LITERT = os.path.join(HERE, "node_modules", "@litertjs")
# The non-threaded builds: relaxed-SIMD, and "compat" for browsers without relaxed SIMD.
# (Threads need cross-origin isolation headers that static hosts rarely send; JSPI is only for
# WebGPU/WebNN partitioning.)
WASM_FILES = ("litert_wasm_internal.js", "litert_wasm_internal.wasm",
              "litert_wasm_compat_internal.js", "litert_wasm_compat_internal.wasm")
BUNDLED = ("int8", "float32")  # the first is loaded at start: int8 is the faster on phones


def log(msg: str) -> None:
    print(f"android-demo: {msg}", flush=True)


def npm_ci(force: bool = False) -> None:
    """Installs the locked packages unless node_modules already holds exactly them."""
    lock_path = os.path.join(HERE, "package-lock.json")
    with open(lock_path) as f:
        locked = {k: v.get("version") for k, v in json.load(f)["packages"].items() if k}
    hidden = os.path.join(HERE, "node_modules", ".package-lock.json")
    installed = {}
    if os.path.exists(hidden):
        with open(hidden) as f:
            installed = {k: v.get("version") for k, v in json.load(f).get("packages", {}).items() if k}
    if installed == locked and not force:
        log(f"node_modules up to date with package-lock.json ({len(locked)} packages)")
        return
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("android-demo: npm not found: install Node.js 20+ (with npm) to build the app")
    log("npm ci (from package-lock.json)")
    r = subprocess.run([npm, "ci", "--prefer-offline", "--no-audit", "--no-fund"], cwd=HERE,
                       timeout=600)
    if r.returncode:
        sys.exit(f"android-demo: `npm ci` failed in {HERE} (exit {r.returncode}); with no network "
                 "it needs the locked packages in the npm cache (~/.npm)")


def litert_version() -> str:
    with open(os.path.join(LITERT, "core", "package.json")) as f:
        return json.load(f)["version"]


def copy_litert(dst: str) -> None:
    """LiteRT.js's ES modules (the bare ``@litertjs/wasm-utils`` import made relative, as no
    bundler resolves it) and its WebAssembly runtime, into ``dst/vendor/litertjs``."""
    out = os.path.join(dst, "vendor", "litertjs")
    os.makedirs(os.path.join(out, "wasm"))
    with open(os.path.join(LITERT, "core", "dist", "index.js")) as f:
        core = f.read()
    spec = 'from "@litertjs/wasm-utils"'
    if core.count(spec) != 1:
        sys.exit(f"android-demo: {LITERT}/core/dist/index.js: expected one import {spec} "
                 f"(found {core.count(spec)}); is @litertjs/core still 2.5.x?")
    with open(os.path.join(out, "core.js"), "w") as f:
        f.write(core.replace(spec, 'from "./wasm-utils.js"').replace(
            "//# sourceMappingURL=index.js.map", ""))
    shutil.copy(os.path.join(LITERT, "wasm-utils", "dist", "index.js"),
                os.path.join(out, "wasm-utils.js"))
    for name in WASM_FILES:
        shutil.copy(os.path.join(LITERT, "core", "wasm", name), os.path.join(out, "wasm", name))
    shutil.copy(os.path.join(LITERT, "core", "package.json"), os.path.join(out, "package.json"))


def find_models(models_dir: str | None, files: list[str]) -> list[tuple[str, str]]:
    """[(id, path)] of the models to bundle (see module docstring)."""
    found = []
    for path in files:
        if not os.path.isfile(path):
            sys.exit(f"android-demo: {path}: no such model file")
        found.append((os.path.splitext(os.path.basename(path))[0], path))
    default = models_dir is None
    models_dir = os.path.join(ROOT, "runs", "demo") if default else models_dir
    if default and files:
        return found
    for q in BUNDLED:
        path = os.path.join(models_dir, f"model_{q}.tflite")
        if os.path.isfile(path):
            found.append((q, path))
    if not found:  # a product bundles exported models only, never a test fixture
        sys.exit(f"android-demo: {models_dir}: no model_int8.tflite or model_float32.tflite; "
                 "export them with `make demo`, or bundle another folder's with "
                 "`make android-demo ANDROID_MODELS=DIR` (build.py --models DIR), or pass "
                 "--model FILE.tflite")
    return found


def embedded_record(path: str) -> tuple[list[str], dict]:
    """(names of the associated files, Frontier's frontier.json or {}) appended to a model by
    its metadata writer (a zip archive; the app reads the metadata itself, this is for the
    build's log and menu)."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            record = json.loads(z.read("frontier.json")) if "frontier.json" in names else {}
    except (zipfile.BadZipFile, OSError, ValueError, KeyError):
        return [], {}
    return names, record if isinstance(record, dict) else {}


def copy_models(dst: str, models: list[tuple[str, str]]) -> list[dict]:
    os.makedirs(os.path.join(dst, "models"))
    entries = []
    for model_id, path in models:
        name = os.path.basename(path)
        shutil.copy(path, os.path.join(dst, "models", name))
        sidecar = os.path.splitext(path)[0] + ".json"
        meta = None
        if os.path.isfile(sidecar):  # not needed with embedded metadata, checked against it
            with open(sidecar) as f:
                meta = json.load(f)
            shutil.copy(sidecar, os.path.join(dst, "models", os.path.basename(sidecar)))
        files, record = embedded_record(path)
        size = os.path.getsize(path)
        quant = ((meta or record).get("export") or {}).get("quantize", model_id)
        entries.append({"id": model_id, "name": name, "file": f"models/{name}",
                        "meta": f"models/{os.path.basename(sidecar)}" if meta else None,
                        "embedded": files,
                        "bytes": size, "label": f"{quant} · {name} ({size / 1e6:.1f} MB)"})
        where = [f"embedded metadata ({', '.join(files)})" if files else "",
                 "sidecar" if meta else ""]
        log(f"model {name} ({size / 1e6:.2f} MB): "
            + (" + ".join(w for w in where if w) or "no metadata: classes will be numbered"))
    return entries


def png(size: int) -> bytes:
    """The app icon: a detection box with a label tab on a dark square (maskable: the drawing
    stays inside the central 80%)."""
    bg, fg, tab = (17, 17, 17), (52, 199, 89), (255, 255, 255)
    x0, y0, x1, y1 = (int(size * f) for f in (0.24, 0.30, 0.76, 0.74))
    t = max(2, size // 24)
    rows = []
    for y in range(size):
        row = bytearray(b"\x00")  # PNG filter byte: none
        for x in range(size):
            inside = x0 <= x < x1 and y0 <= y < y1
            edge = inside and (x < x0 + t or x >= x1 - t or y < y0 + t or y >= y1 - t)
            label = x0 <= x < x0 + (x1 - x0) // 2 and y0 - 3 * t <= y < y0
            dot = (x - size / 2) ** 2 + (y - (y0 + y1) / 2) ** 2 < (size * 0.1) ** 2
            row += bytes(fg if edge or label else tab if dot else bg)
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + chunk(b"IEND", b""))


def write_service_worker(dst: str) -> None:
    """Fills in sw.js: every built file (to cache on install) and a version hash of them all."""
    assets, digest = ["./"], hashlib.sha256()
    for folder, _, names in sorted(os.walk(dst)):
        for name in sorted(names):
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, dst).replace(os.sep, "/")
            if rel == "sw.js":
                continue
            assets.append(rel)
            with open(path, "rb") as f:
                digest.update(rel.encode() + f.read())
    sw_path = os.path.join(dst, "sw.js")
    with open(sw_path) as f:
        sw = f.read()
    sw = sw.replace("'__VERSION__'", json.dumps(f"frontier-{digest.hexdigest()[:16]}"))
    sw = sw.replace("__ASSETS__", json.dumps(assets, indent=1))
    with open(sw_path, "w") as f:
        f.write(sw)


def build(out: str, models_dir: str | None = None, model_files=(), force_npm: bool = False) -> str:
    npm_ci(force_npm)
    out = os.path.abspath(out)
    tmp = f"{out}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(os.path.join(HERE, "app"), tmp)
    copy_litert(tmp)
    models = copy_models(tmp, find_models(models_dir, list(model_files)))
    os.makedirs(os.path.join(tmp, "icons"))
    for size in (192, 512):
        with open(os.path.join(tmp, "icons", f"icon-{size}.png"), "wb") as f:
            f.write(png(size))
    with open(os.path.join(tmp, "build-info.json"), "w") as f:
        json.dump({"litertjs": litert_version(), "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                   "models": models}, f, indent=1)
    write_service_worker(tmp)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    log(f"built {os.path.relpath(out, os.getcwd())} (LiteRT.js {litert_version()}); serve it "
        "with `make serve-android-demo`")
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", help="folder with model_float32.tflite / model_int8.tflite "
                   "(and their .json sidecars, if any); default runs/demo")
    p.add_argument("--model", action="append", default=[],
                   help="a .tflite to bundle (its .json sidecar too, if any); repeatable")
    p.add_argument("--out", default=os.path.join(HERE, "dist"))
    p.add_argument("--npm-ci", action="store_true", help="run `npm ci` even if node_modules "
                   "already matches the lock file")
    a = p.parse_args(argv)
    build(a.out, a.models, a.model, a.npm_ci)


if __name__ == "__main__":
    main()
