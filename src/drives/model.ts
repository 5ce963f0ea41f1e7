/** What the station knows about a drive plugged into it. */

export type DriveKind = "physical" | "loop" | "mounted";

export interface Partition {
  device: string;
  number: number;
  size: number;
  fsType?: string;
  label?: string;
  uuid?: string;
}

export interface AttachedDrive {
  /** Stable while the drive stays attached: the same drive gets the same key on every scan. */
  key: string;
  kind: DriveKind;
  /** Whole-disk device (`/dev/sdb`, `/dev/loop3`); for `mounted`, the volume's device as df shows it. */
  device: string;
  size: number;
  /** Hardware serial: drivelist reports none and loop devices have none. Filled by identify(). */
  serial?: string;
  model?: string;
  /** Loop devices: the image file. */
  backingFile?: string;
  /** `mounted` volumes: where someone else mounted it. */
  mountpoint?: string;
}

export interface IdentifiedDrive extends AttachedDrive {
  partitions: Partition[];
  /** Filesystem on the whole device, when it has no partition table. */
  fsType?: string;
}
