/**
 * What a raw disk image holds, from its first bytes: a cloud image is a disk with a partition
 * table or a filesystem. qemu-img calls every file it does not recognise "raw", so without this
 * any file (a 6-byte text file, a server's /etc/shadow) would register as a disk. Pure: the
 * image service reads the head and asks.
 */

/** How many bytes of the file the check needs (btrfs's superblock magic ends at 64 KiB + 72). */
export const DISK_HEAD_BYTES = 0x10048;

const at = (head: Buffer, offset: number, magic: string | number[]): boolean => {
  const bytes = typeof magic === 'string' ? Buffer.from(magic, 'latin1') : Buffer.from(magic);
  return head.length >= offset + bytes.length && head.subarray(offset, offset + bytes.length).equals(bytes);
};

/** What the head of a raw disk shows (e.g. "a GPT partition table"), or undefined: not a disk. */
export function rawDiskContent(head: Buffer): string | undefined {
  if (at(head, 512, 'EFI PART')) return 'a GPT partition table';
  if (at(head, 0, 'XFSB')) return 'an XFS filesystem';
  if (at(head, 0, 'hsqs')) return 'a squashfs filesystem';
  if (at(head, 0, [0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe])) return 'a LUKS volume';
  if (at(head, 1080, [0x53, 0xef])) return 'an ext2/3/4 filesystem';
  if (at(head, 0x8001, 'CD001')) return 'an ISO 9660 filesystem';
  if (at(head, 0x10040, '_BHRfS_M')) return 'a btrfs filesystem';
  // Last: the boot signature alone (an MBR, or a FAT boot sector).
  if (at(head, 510, [0x55, 0xaa])) return 'an MBR partition table or boot sector';
  return undefined;
}
