"""Ingress controller for IngressClass `sampan` (networking.k8s.io/v1)."""

from sampan.ingress.controller import IngressController

__all__ = ["IngressController"]
