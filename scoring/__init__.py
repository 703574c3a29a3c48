"""Batch scoring on Apache Beam: a folder or a bucket of photos through a stored version, on one machine
(FnApiRunner) or on Dataflow. A consumer of the store, like app/: it reads versions, never writes them."""

MAX_FILE_BYTES = 10 * 1024 * 1024  # the server's MAX_CONTENT_LENGTH: what /predict would refuse is refused here
