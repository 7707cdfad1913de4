/*
 * headwater: the local stack's Hive metastore listens on loopback only.
 *
 * Hive 2.3's HiveMetaStore binds its Thrift port with HiveAuthUtils.getServerSocket(null, port), a
 * wildcard bind, and has no setting for the address (hive.metastore.thrift.bind.host came with the
 * standalone metastore of Hive 3). This class replaces HiveAuthUtils on the metastore JVM's class
 * path (it comes first, before pyspark's hive-common jar) so that a null host means the address in the
 * system property headwater.bind.host. Only the metastore server process loads it; it speaks plain
 * Thrift (no SSL in the local stack), so the SSL methods say so instead of opening a socket.
 */
package org.apache.hadoop.hive.common.auth;

import java.net.InetSocketAddress;
import java.util.List;

import org.apache.thrift.transport.TServerSocket;
import org.apache.thrift.transport.TSocket;
import org.apache.thrift.transport.TTransport;
import org.apache.thrift.transport.TTransportException;

public class HiveAuthUtils {
  private static final String BIND_HOST = System.getProperty("headwater.bind.host", "127.0.0.1");

  public static TServerSocket getServerSocket(String host, int port) throws TTransportException {
    String bind = host == null || host.isEmpty() ? BIND_HOST : host;
    return new TServerSocket(new InetSocketAddress(bind, port));
  }

  public static TTransport getSocketTransport(String host, int port, int loginTimeout) throws TTransportException {
    return new TSocket(host, port, loginTimeout);
  }

  public static TTransport getSSLSocket(String host, int port, int loginTimeout) throws TTransportException {
    throw noSsl();
  }

  public static TTransport getSSLSocket(String host, int port, int loginTimeout, String trustStorePath,
      String trustStorePassWord) throws TTransportException {
    throw noSsl();
  }

  public static TTransport getSSLSocket(String host, int port, int socketTimeout, int connectionTimeout,
      String trustStorePath, String trustStorePassWord) throws TTransportException {
    throw noSsl();
  }

  public static TServerSocket getServerSSLSocket(String host, int port, String keyStorePath,
      String keyStorePassWord, List<String> sslVersionBlacklist) throws TTransportException {
    throw noSsl();
  }

  private static TTransportException noSsl() {
    return new TTransportException("SSL is not set up in the headwater local stack's metastore");
  }
}
