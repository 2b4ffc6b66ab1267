# Sourced by the scripts: find uv, installing it if missing, and never let it download a Python.
export UV_PYTHON_DOWNLOADS=never
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
if command -v uv >/dev/null 2>&1; then
    UV=(uv)
elif [ -x .tools/bin/uv ]; then
    UV=(.tools/bin/uv)
elif python3 -m uv --version >/dev/null 2>&1; then
    UV=(python3 -m uv)
else
    echo "uv not found: installing it into .tools/ (one time)" >&2
    python3 -m venv .tools && .tools/bin/python -m pip install --quiet --disable-pip-version-check uv || {
        echo "could not install uv; install it with 'pip install uv' and try again" >&2
        exit 1
    }
    UV=(.tools/bin/uv)
fi
# Bytecode at install time: many machines and containers set PYTHONDONTWRITEBYTECODE, and
# then every command would compile the sources again (about half a second each).
"${UV[@]}" sync --frozen --quiet --compile-bytecode || exit 1
"${UV[@]}" run --frozen --no-sync python -m compileall -q -j0 watcher >/dev/null || exit 1
