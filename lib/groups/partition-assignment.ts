import { createHash } from 'node:crypto';

/**
 * Which partitions each live member consumes: the same answer on every instance that sees the
 * same members, with nothing to coordinate but the member list.
 *
 * Balanced rendezvous hashing: every partition ranks the members by a hash of (member,
 * partition) and goes to the first of them with room, room being `ceil(count / members)`. So
 * the shares differ by one at most (plain rendezvous hashing gave 6/3/3 of 12 in a try, which
 * would halve the gain of the third instance), and a member joining or leaving moves few
 * partitions besides the ones it takes or frees (round-robin over the sorted list moves most
 * of them).
 */
export function assignPartitions(count: number, members: readonly string[]): Map<string, number[]> {
  const sorted = [...new Set(members)].sort();
  const assignment = new Map<string, number[]>(sorted.map((m) => [m, []]));
  if (sorted.length === 0) return assignment;
  const room = Math.ceil(count / sorted.length);
  for (let partition = 0; partition < count; partition++) {
    const ranked = sorted
      .map((member) => ({ member, score: score(member, partition) }))
      .sort((a, b) => b.score - a.score || (a.member < b.member ? -1 : 1));
    const owner = ranked.find((r) => assignment.get(r.member)!.length < room)!;
    assignment.get(owner.member)!.push(partition);
  }
  return assignment;
}

function score(member: string, partition: number): number {
  return createHash('sha256').update(`${member}\u0000${partition}`).digest().readUInt32BE(0);
}
