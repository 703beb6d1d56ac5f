"""GPU code generation: schedules that turn linalg ops on memrefs into ``gpu.launch`` kernels.

One job per file: ``body.py`` (putting a linalg body into a kernel), ``elementwise.py`` and
``reduction.py`` (the two schedules), ``schedule.py`` (which op gets which schedule),
``host.py`` (device memory on the host side, the plain-loops mapping, the host check),
``stages.py`` (the registered passes the NVIDIA and AMD targets list), ``rocdl.py`` (the AMD
back end: ROCDL, LLVM IR, the offline HSACO through ``llc-19`` / ``ld.lld-19``).
"""
