/**
 * Verifies an Entra ID bearer token for our API and returns the calling application's id, and for a
 * delegated console token (a signed-in engineer) the user's object id as well.
 */
export interface TokenVerifier {
  verify(token: string): Promise<{ appId: string; tenantId: string; userObjectId?: string }>;
}
