"""Container runtimes behind one interface: ``oci`` (runc/crun), ``raw`` (host processes)."""
