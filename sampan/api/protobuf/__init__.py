"""Decoding of Kubernetes protobuf request bodies (what kubectl >= 1.32 sends for typed clients)."""

from .decode import MAGIC, PROTOBUF_CONTENT_TYPE, decode_request_body, message_for
from .wire import ProtobufError

__all__ = ["MAGIC", "PROTOBUF_CONTENT_TYPE", "ProtobufError", "decode_request_body", "message_for"]
