// The manifest-file source (--manifests). The Kubernetes informer source lives next to it in controllers/kube/;
// both implement ClusterSource (src/model/source.ts) and the composition root picks one.
export { ManifestSource, readManifests, type ManifestSourceOptions, type ManifestContents } from './source.ts';
export { parseManifest, type ParsedManifest, type ManifestObject, type IgnoredObject } from './parse.ts';
export { isManifestFileName, listManifestFiles } from './files.ts';
