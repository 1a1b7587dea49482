import t from 'tap';
import { recognizeVendorIds, VendorId, vendorIdNames } from '../../src/ikev1/vendor-ids.js';
import { fromHex } from '../../src/wire/bytes.js';

t.test(
  'NAT-T: the RFC is preferred over the drafts (RFC 3947 section 4), then the newest draft',
  async (t) => {
    const { NAT_T_DRAFT_02, NAT_T_DRAFT_03, NAT_T_RFC3947 } = VendorId;
    t.equal(recognizeVendorIds([NAT_T_DRAFT_02, NAT_T_RFC3947, NAT_T_DRAFT_03]).natT, 'rfc3947');
    t.equal(recognizeVendorIds([NAT_T_DRAFT_02, NAT_T_DRAFT_03]).natT, 'draft-03');
    t.equal(recognizeVendorIds([NAT_T_DRAFT_02]).natT, 'draft-02');
    t.equal(recognizeVendorIds([]).natT, undefined);
  },
);

t.test(
  'DPD is recognised by its prefix, whatever the minor version byte (RFC 3706 section 5.2)',
  async (t) => {
    const dpd11 = Uint8Array.from(VendorId.DPD);
    dpd11[15] = 0x01;
    t.equal(recognizeVendorIds([dpd11]).dpd, true);
    t.equal(recognizeVendorIds([VendorId.FRAGMENTATION]).dpd, false);
    t.equal(recognizeVendorIds([VendorId.FRAGMENTATION]).fragmentation, true);
  },
);

t.test('names for the log: known ones by name, the rest in hex', async (t) => {
  const unknown = fromHex('0123456789abcdef');
  const dpd11 = Uint8Array.from(VendorId.DPD);
  dpd11[15] = 0x01;
  t.same(vendorIdNames([VendorId.NAT_T_RFC3947, dpd11, unknown]), [
    'NAT_T_RFC3947',
    'DPD',
    '0123456789abcdef',
  ]);
});
