"""The failure of a store that holds the index elsewhere, in a module of its own so that the
command line and the service can name it without importing the search stack."""


class BackendUnavailable(RuntimeError):
    """The store that holds the index cannot be reached (a Milvus server down or cut off); the
    message says which and what failed. A search that meets it fails with a 503, never a 500."""
