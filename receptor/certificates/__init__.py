"""Certificate tooling: cert-init, cert-makereq, cert-signreq (certs.md)."""
