"""The hybrid compiler: graph IR of primitive ops, passes, code generation and plans.

It imports neither `hybrid` nor user code, so it can be tested on graphs built by hand."""
