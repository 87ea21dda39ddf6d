"""Node agents: the real one (agent.py: pods over a container runtime) and the simulated,
KWOK-like one (simulated*.py: many fake nodes from one process)."""
