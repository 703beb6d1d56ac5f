"""Universal interfaces between the parts of a MAX pipeline: requests, sampling parameters,
generation outputs and statuses (``max.interfaces`` in the reference)."""
