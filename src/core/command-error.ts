/**
 * A command the engine cannot carry out as asked (an unknown connection name, initiating a
 * connection that can only respond): the caller's mistake, reported to the caller, not logged as ours.
 */
export class CommandError extends RangeError {
  override readonly name = 'CommandError';
}
