"""Token sampling compiled into graphs (``max.pipelines.lib.sampling``)."""
