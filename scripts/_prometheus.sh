# Sourced by scripts/test after _uv.sh: Prometheus and promtool, which the alert-rule tests
# (promtool test rules) and the scrape system test run. Debian's `prometheus` package
# brings both; it is installed with apt-get when missing and we are root (a CI container),
# else the tests that need it say how to install it and skip (fail under .ci/run).
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing Prometheus and promtool (Debian package prometheus, one time)" >&2
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; } >/dev/null ||
            echo "could not install the prometheus package; the alert-rule tests will skip" >&2
    else
        echo "promtool not found: the alert-rule tests skip (as root: apt-get install prometheus)" >&2
    fi
fi
