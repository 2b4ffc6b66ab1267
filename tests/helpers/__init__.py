"""What the tests share: builders, stores, conditions, workers and the test MongoDB server."""
