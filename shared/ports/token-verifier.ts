/** Verifies an Entra ID bearer token for our API and returns the calling application's id. */
export interface TokenVerifier {
  verify(token: string): Promise<{ appId: string; tenantId: string }>;
}
