import { createHash } from 'node:crypto';

/**
 * Which partitions each live member consumes: the same answer on every instance that sees the
 * same members, with nothing to coordinate but the member list.
 *
 * Balanced rendezvous hashing: every partition ranks the members by a hash of (member,
 * partition) and goes to the first of them with room: `floor(count / members)` each, one
 * more for the first `count % members` to fill up. So the shares differ by one at most (plain
 * rendezvous hashing can leave one instance twice the share of another, and the group runs at
 * the pace of its busiest member), and a member joining moves few partitions besides the ones
 * it takes: 48 partitions, 3 members to 4, round-robin over the sorted list moves 36, this
 * under 30 (test/unit/partition-options.spec.ts).
 */
export function assignPartitions(count: number, members: readonly string[]): Map<string, number[]> {
  const sorted = [...new Set(members)].sort();
  const assignment = new Map<string, number[]>(sorted.map((m) => [m, []]));
  if (sorted.length === 0) return assignment;
  // `extra` members get one more than `base`: the first to reach `base` while places remain.
  const base = Math.floor(count / sorted.length);
  const extra = count % sorted.length;
  let bigger = 0;
  const hasRoom = (load: number) => load < base || (load === base && bigger < extra);
  for (let partition = 0; partition < count; partition++) {
    const ranked = sorted
      .map((member) => ({ member, score: score(member, partition) }))
      .sort((a, b) => b.score - a.score || (a.member < b.member ? -1 : 1));
    const owner = assignment.get(ranked.find((r) => hasRoom(assignment.get(r.member)!.length))!.member)!;
    if (owner.length === base) bigger++;
    owner.push(partition);
  }
  return assignment;
}

function score(member: string, partition: number): number {
  return createHash('sha256').update(`${member}\u0000${partition}`).digest().readUInt32BE(0);
}
