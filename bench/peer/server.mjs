// The benchmark's peer (bench/api-throughput.sh --peer): node-oidc-provider 9 on 127.0.0.1:18082 with its
// in-memory adapter, one confidential client allowed client_credentials, and introspection enabled. Tokens live
// only in memory: nothing is durable, which is the comparison the figures in bench/RESULTS.md make.
import Provider from 'oidc-provider';

const port = Number(process.env.PORT || 18082);
const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: 'bench',
    client_secret: 'bench-secret-bench-secret-bench-secret',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_post',
  }],
  features: {
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    devInteractions: { enabled: false },
  },
  // Opaque access tokens, as Latchkey issues.
  formats: { customizers: {} },
});
provider.listen(port, '127.0.0.1', () => console.log(`peer listening on ${port}`));
