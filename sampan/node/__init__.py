"""Node agents: the simulated (KWOK-like) agent now; the real one (pod workers over a runtime) later."""
