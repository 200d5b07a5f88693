"""Side-by-side benchmarks of RelayPACS-tus against peer tus servers and a trivial sink (see README.md)."""
