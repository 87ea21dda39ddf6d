"""The scheduler: a queue, a cache with cheap snapshots, and plugins registered by name.

See queue.py, cache.py, framework.py, core.py (the pure scheduling core), scheduler.py
(informers, binding, events) and plugins/ (one file per plugin).
"""

from sampan.scheduler.config import SchedulerConfig
from sampan.scheduler.scheduler import Scheduler

__all__ = ["Scheduler", "SchedulerConfig"]
