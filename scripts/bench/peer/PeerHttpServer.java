// Starts the Vert.x HTTP server that Camel's platform-http routes listen on. camel-platform-http-main would
// do this from camel.server.* properties, but Maven Central as served here has no camel-platform-http-main
// 4.22.0, so this one class does the same with VertxPlatformHttpServer from camel-platform-http-vertx.
// camel-main loads it through camel.main.configuration-classes (application.properties).
package bench.peer;

import org.apache.camel.CamelConfiguration;
import org.apache.camel.CamelContext;
import org.apache.camel.component.platform.http.vertx.VertxPlatformHttpServer;
import org.apache.camel.component.platform.http.vertx.VertxPlatformHttpServerConfiguration;

public class PeerHttpServer implements CamelConfiguration {
    @Override
    public void configure(CamelContext context) throws Exception {
        VertxPlatformHttpServerConfiguration conf = new VertxPlatformHttpServerConfiguration();
        conf.setBindHost(context.resolvePropertyPlaceholders("{{peer.host}}"));
        conf.setBindPort(Integer.parseInt(context.resolvePropertyPlaceholders("{{peer.port}}")));
        conf.setMaxBodySize(16L * 1024 * 1024);
        context.addService(new VertxPlatformHttpServer(conf));
    }
}
