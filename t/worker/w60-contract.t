# What the module, the worker and redis/ share is declared once, in
# src/core/wa_streams.h: the names of the fields the normalizer sets itself.
# The normalizer writes no field name of its own that is not there, the
# state functions read no field that is neither there nor one of Meta's
# names that docs/events.md lists, and docs/events.md names every one.
use strict;
use warnings;
use Test::More;

sub slurp {
    my ($f) = @_;
    open my $fh, '<', $f or die "$f: $!";
    local $/;
    return scalar <$fh>;
}

my $h = slurp('src/core/wa_streams.h');
my %header = map { $_ => 1 }
    ($h =~ /#define WA_FIELD_\w+\s+"(\w+)"/g),
    ($h =~ /\bX\((\w+)\)/g);
cmp_ok scalar(keys %header), '>', 40, scalar(keys %header)
    . ' field names in the header';

my %streams = map { $_ => 1 } $h =~ /WA_STREAM_(\w+)\s+"(\w+)"/g;
my $names = slurp('src/core/wa_streams.c');
is_deeply [ $names =~ /"(\w+)"/g ], [ qw(messages statuses account) ],
    'the stream names, in the order of wa_stream_t';

# the normalizer's own names: literals given to wa_add_*
my $c = slurp('src/core/wa_normalize.c');
my @written = $c =~ /wa_add_(?:path|json|text)\(bd,\s*"(\w+)"/g;
cmp_ok scalar(@written), '>', 30, scalar(@written) . ' names written';
my @undeclared = grep { !$header{$_} } @written;
is_deeply \@undeclared, [], 'every name the normalizer writes is declared';
unlike $c, qr/wa_add\w*\(bd,\s*"(?:kind|field|event_id|waba_id|ts|raw)"/,
    'the common fields through their macros';

# the names docs/events.md lists: the normalizer's and Meta's own
my $doc = slurp('docs/events.md');
my %doc = map { $_ => 1 } $doc =~ /`([a-z][a-z0-9_]*)`/g;
my @missing = grep { !$doc{$_} } sort keys %header;
is_deeply \@missing, [], 'docs/events.md names every declared field';

# what the state functions read of an event
my $lua = slurp('redis/wa_state.lua');
my %read = map { $_ => 1 } $lua =~ /\be\.([a-z_][a-z0-9_]*)/g;
cmp_ok scalar(keys %read), '>', 30, scalar(keys %read) . ' fields read';
my @unknown = grep { !$header{$_} && !$doc{$_} } sort keys %read;
is_deeply \@unknown, [], 'redis/wa_state.lua reads only declared or '
    . 'documented fields';

# the consumer leaves out and looks for fields by the header's names
my $w = slurp('src/worker/consume.c');
unlike $w, qr/"(?:raw|kind|text|keyword|received_at)"/,
    'the consumer names fields through the header';

done_testing;
