"""Developer scripts: benchmarks, calibration and measurements (run from the repo root)."""
