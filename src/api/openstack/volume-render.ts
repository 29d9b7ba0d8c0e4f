import type { Context } from '../../service/context.js';
import type { Volume } from '../../service/volumes.js';
import { cinderTime, OPENSTACK_PATHS, osUuid } from './common.js';

/**
 * Cinder's bodies of kumo's volumes. kumo records a volume's name, size, project, creation time
 * and the instance it is attached to (with its device); everything else takes the value Cinder
 * gives a plain volume of its default type.
 */

/** The newest microversion served: 3.0, the base of v3 (what kumo's bodies follow). */
export const CINDER_VERSION = '3.0';

export const volumeId = (name: string): string => osUuid('volume', name);

/** The one volume type: Cinder's default. */
export const DEFAULT_TYPE = {
  id: osUuid('volume-type', '__DEFAULT__'), name: '__DEFAULT__', description: 'Default Volume Type',
  is_public: true, 'os-volume-type-access:is_public': true, extra_specs: {}, qos_specs_id: null,
};

export const cinderV3 = (base: string) => ({
  id: 'v3.0', status: 'CURRENT', version: CINDER_VERSION, min_version: '3.0', updated: '2016-02-08T12:20:21Z',
  links: [{ rel: 'describedby', type: 'text/html', href: 'https://docs.openstack.org/' }, { rel: 'self', href: `${base}${OPENSTACK_PATHS.volume}/v3/` }],
  'media-types': [{ base: 'application/json', type: 'application/vnd.openstack.volume+json;version=3' }],
});

const links = (base: string, project: string, id: string) => [
  { rel: 'self', href: `${base}${OPENSTACK_PATHS.volume}/v3/${project}/volumes/${id}` },
  { rel: 'bookmark', href: `${base}${OPENSTACK_PATHS.volume}/${project}/volumes/${id}` },
];

/** in-use while kumo records an attachment; error when its disk file is gone; else available. */
export function volumeStatus(v: Volume): string {
  if (v.instance) return 'in-use';
  return v.drift.some((d) => d.startsWith('its disk ')) ? 'error' : 'available';
}

/** The short form of GET /volumes. */
export const volumeSummary = (base: string, v: Volume) => ({ id: volumeId(v.name), name: v.name, links: links(base, v.project, volumeId(v.name)) });

/** The full form (GET /volumes/detail, show, create). */
export function volumeDetail(ctx: Context, base: string, v: Volume) {
  const id = volumeId(v.name);
  const server = v.instance ? ctx.instances.get(v.instance) : undefined;
  const attachments = v.instance && server ? [{
    id, attachment_id: osUuid('attachment', v.name, server.uuid), volume_id: id, server_id: server.uuid,
    host_name: server.host, device: v.device ? `/dev/${v.device}` : null, attached_at: null,
  }] : [];
  return {
    id, name: v.name, description: null, size: v.sizeGiB, status: volumeStatus(v),
    attachments, availability_zone: 'nova', bootable: 'false', encrypted: false, multiattach: false,
    volume_type: DEFAULT_TYPE.name, volume_type_id: DEFAULT_TYPE.id, metadata: {},
    created_at: cinderTime(v.createdAt), updated_at: null,
    snapshot_id: null, source_volid: null, consistencygroup_id: null, group_id: null, replication_status: null,
    migration_status: null, provider_id: null, service_uuid: null, shared_targets: false, cluster_name: null,
    user_id: null, 'os-vol-tenant-attr:tenant_id': v.project,
    links: links(base, v.project, id),
  };
}
