"""Process plumbing that several packages share and that belongs to no domain (stop signals,
stopping child processes). It imports only the standard library, so any package can use it."""
