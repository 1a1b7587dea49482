import { createHash } from 'node:crypto';
import { equalBytes, fromHex, toHex } from '../wire/bytes.js';
import { VERSION } from '../version.js';

/**
 * Vendor IDs we recognise. Values: RFC 3947 section 4 (MD5 of "RFC 3947"), the NAT-T drafts
 * (MD5 of their names), RFC 3706 section 5.2 (DPD, version 1.0), and the IKE fragmentation VID
 * that Windows and Cisco send (MD5 of "FRAGMENTATION").
 */
export const VendorId = {
  NAT_T_RFC3947: fromHex('4a131c81070358455c5728f20e95452f'),
  NAT_T_DRAFT_02: fromHex('90cb80913ebb696e086381b5ec427b1f'),
  NAT_T_DRAFT_02_N: fromHex('cd60464335df21f87cfdb2fc68b6a448'),
  NAT_T_DRAFT_03: fromHex('7d9419a65310ca6f2c179d9215529d56'),
  DPD: fromHex('afcad71368a1f1c96b8696fc77570100'),
  FRAGMENTATION: fromHex('4048b7d56ebce88525e7de7f00d6c2d3'),
} as const;

/** Ours: MD5 of "ike-node <version>", so peers' logs can tell who they talk to. */
export const OWN_VENDOR_ID = new Uint8Array(createHash('md5').update(`ike-node ${VERSION}`).digest());

export type NatTVariant = 'rfc3947' | 'draft-03' | 'draft-02';

export interface PeerVendorIds {
  readonly natT?: NatTVariant;
  readonly dpd: boolean;
  readonly fragmentation: boolean;
}

export function recognizeVendorIds(vids: readonly Uint8Array[]): PeerVendorIds {
  const has = (known: Uint8Array) => vids.some((vid) => equalBytes(vid, known));
  let natT: NatTVariant | undefined;
  // Prefer the RFC, then the newest draft, as RFC 3947 section 4 asks.
  if (has(VendorId.NAT_T_RFC3947)) natT = 'rfc3947';
  else if (has(VendorId.NAT_T_DRAFT_03)) natT = 'draft-03';
  else if (has(VendorId.NAT_T_DRAFT_02) || has(VendorId.NAT_T_DRAFT_02_N)) natT = 'draft-02';
  const dpd = vids.some(dpdLike);
  return { ...(natT && { natT }), dpd, fragmentation: has(VendorId.FRAGMENTATION) };
}

/** Every VID received, named where known, for the log (only built when it is logged). */
export function vendorIdNames(vids: readonly Uint8Array[]): string[] {
  return vids.map((vid) => {
    const known = Object.entries(VendorId).find(([, value]) => equalBytes(value, vid));
    return known ? known[0] : dpdLike(vid) ? 'DPD' : toHex(vid);
  });
}

/** DPD's VID may carry a different minor version byte; the prefix identifies it. */
function dpdLike(vid: Uint8Array): boolean {
  return vid.length === 16 && equalBytes(vid.subarray(0, 14), VendorId.DPD.subarray(0, 14));
}
