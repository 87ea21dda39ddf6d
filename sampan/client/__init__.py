"""API clients: one interface, an HTTP transport (``http``) and an in-process one
(``local``), plus informers, the work queue, expectations and the event recorder."""

from sampan.client.expectations import ControllerExpectations, UIDTrackingExpectations
from sampan.client.informer import Informer, InformerFactory
from sampan.client.interface import Client, Gone, ResourceRef, object_key, split_key
from sampan.client.workqueue import ShutDown, WorkQueue, run_workers

__all__ = [
    "Client",
    "ControllerExpectations",
    "Gone",
    "Informer",
    "InformerFactory",
    "ResourceRef",
    "ShutDown",
    "UIDTrackingExpectations",
    "WorkQueue",
    "object_key",
    "run_workers",
    "split_key",
]
