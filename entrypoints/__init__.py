"""The composition roots: the `sipflow` command, the worker and the embedded stack. They sit
above every package they wire (domain, backends, activities, workflows, API); nothing imports
them but tests and benchmarks."""
