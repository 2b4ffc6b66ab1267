# Sourced by scripts/test after _uv.sh: the MongoDB-wire server the tests start (SecantusDB).
# It is a test tool (beta, GPL-2.0-only), so it lives in an isolated, git-ignored environment
# of its own, never in the product's dependencies or uv.lock. It is installed even when
# WATCHER_TEST_MONGO_URI names a server of yours: the tests that kill a server or step it
# down start one of their own.
MONGO_SERVER_PACKAGE="SecantusDB==0.7.0b3"
MONGO_SERVER_ENV=.tools/mongo-server
if ! "$MONGO_SERVER_ENV/bin/python" -c "import secantus" >/dev/null 2>&1; then
    echo "installing the MongoDB test server ($MONGO_SERVER_PACKAGE) into $MONGO_SERVER_ENV (one time)" >&2
    "${UV[@]}" venv --quiet --allow-existing "$MONGO_SERVER_ENV" &&
        "${UV[@]}" pip install --quiet --python "$MONGO_SERVER_ENV/bin/python" "$MONGO_SERVER_PACKAGE" || {
        echo "could not install $MONGO_SERVER_PACKAGE; the MongoDB tests need it" >&2
        exit 1
    }
fi
export WATCHER_TEST_MONGO_PYTHON="$PWD/$MONGO_SERVER_ENV/bin/python"
