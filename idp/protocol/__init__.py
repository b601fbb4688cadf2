"""The protocol core: the only importer of Authlib (grants, endpoints, errors)."""
