"""Object storage: the ObjectStore protocol and its local, S3 and in-memory backends."""

from sdfleet.objects.base import (
    InvalidMultipart,
    InvalidObjectKey,
    InvalidRange,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreUnavailable,
    PartInfo,
    UploadNotFound,
)
from sdfleet.objects.factory import open_object_store

__all__ = [
    "InvalidMultipart",
    "InvalidObjectKey",
    "InvalidRange",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "ObjectStoreUnavailable",
    "PartInfo",
    "UploadNotFound",
    "open_object_store",
]
