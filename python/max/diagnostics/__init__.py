"""Diagnostics for MAX: hardware monitoring (:mod:`max.diagnostics.gpu`)."""
