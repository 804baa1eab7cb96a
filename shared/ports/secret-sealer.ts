/** Seals secrets (initial passwords) that must wait in storage for a queued step; never logged, never in a message. */
export interface SecretSealer {
  seal(plain: string): string;
  open(sealed: string): string;
}
