"""The embedded local stack: real Kafka (KRaft), HBase + Thrift, a Hive metastore, and Spark as a library.

Python API (what the CLI and the test suite use)::

    from headwater.stack import Stack, StackConfig
    stack = Stack(StackConfig.from_env())
    stack.up()          # idempotent; waits for every service by speaking its protocol
    stack.status()      # list of ServiceStatus
    stack.down()        # graceful, then forced; state kept unless purge=True
"""

from headwater.stack.config import StackConfig
from headwater.stack.stack import ServiceStatus, Stack

__all__ = ["ServiceStatus", "Stack", "StackConfig"]
