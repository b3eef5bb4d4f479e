// Attaches one artifact (a Sigstore bundle) to an image the way CI attestation actions do, with
// npm's `@sigstore/oci`: the bundle as a manifest whose `subject` is the image, pushed by digest,
// then — the registry having no referrers API — the `sha256-<hex>` referrers list read (with its
// ETag), appended to and PUT back with `If-Match`.
//
// Usage: node attach.mjs <registry host:port> <repository> <image digest> <bundle text>
// Environment: SIGSTORE_OCI_MODULES (a node_modules holding @sigstore/oci). Prints the attached
// manifest's descriptor as JSON; on failure, the error and its cause on stderr, exit status 1.

import { createRequire } from 'node:module';
import { join } from 'node:path';

const modules = process.env.SIGSTORE_OCI_MODULES;
if (!modules) {
  console.error('SIGSTORE_OCI_MODULES is not set');
  process.exit(2);
}
const require = createRequire(join(modules, 'attach.cjs'));
const { attachArtifactToImage } = require('@sigstore/oci');

const [registry, repository, imageDigest, bundle] = process.argv.slice(2);
try {
  const descriptor = await attachArtifactToImage({
    imageName: `${registry}/${repository}`,
    imageDigest,
    artifact: Buffer.from(bundle),
    mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
    // The test registry has no authentication: no sign-in.
    credentials: undefined,
  });
  console.log(JSON.stringify(descriptor));
} catch (error) {
  let cause = error.cause;
  const causes = [];
  while (cause) {
    causes.push(cause.message ?? String(cause));
    cause = cause.cause;
  }
  console.error([error.message, ...causes].join(': '));
  process.exit(1);
}
