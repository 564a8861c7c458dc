"""pytest plugin entry point (the conformance kit lands here)."""
