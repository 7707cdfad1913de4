// The one call of the Hive metastore's Thrift service that readiness needs.
namespace py hive_metastore

exception MetaException {
  1: string message
}

service ThriftHiveMetastore {
  list<string> get_all_databases() throws (1: MetaException o1)
}
