-- The certificate's chain as the phone sent it at registration (the certificates between the leaf and a
-- trust anchor, base64 DER separated by commas), so that the relay can check the certificate's
-- revocation at later device requests and tunnel joins. NULL for certificates registered before.
ALTER TABLE certificates ADD COLUMN chain TEXT;
